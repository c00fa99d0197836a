//! The proxy decision: settings from the environment (through an injected lookup) or explicit,
//! bypass lists, loopback targets, and what `Debug` and errors show of credentials.

use std::collections::HashMap;

use super::*;
use crate::ErrorKind;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn uri(s: &str) -> http::Uri {
    s.parse().unwrap()
}

/// The proxy (`host:port`) a request to `target` goes through.
fn via(rules: &ProxyRules, target: &str) -> Option<String> {
    rules.route(&uri(target)).map(|r| r.authority().to_string())
}

#[test]
fn the_environment_names_one_proxy_per_scheme() {
    let rules = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[
            ("HTTPS_PROXY", "http://secure.proxy:3128"),
            ("HTTP_PROXY", "plain.proxy:8080"),
        ]),
    )
    .unwrap();
    assert_eq!(
        via(&rules, "https://adb-1.azuredatabricks.net/sql"),
        Some("secure.proxy:3128".into())
    );
    assert_eq!(
        via(&rules, "http://files.example/x"),
        Some("plain.proxy:8080".into())
    );
}

#[test]
fn upper_case_variables_win_and_lower_case_ones_are_read_too() {
    let rules = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("http_proxy", "http://lower:3"),
            ("no_proxy", "skip.example"),
        ]),
    )
    .unwrap();
    assert_eq!(via(&rules, "https://a.example/"), Some("upper:1".into()));
    assert_eq!(via(&rules, "http://a.example/"), Some("lower:3".into()));
    assert_eq!(via(&rules, "https://skip.example/"), None);
}

#[test]
fn without_variables_nothing_is_proxied_and_empty_ones_count_as_unset() {
    for vars in [&[][..], &[("HTTPS_PROXY", "  "), ("HTTP_PROXY", "")][..]] {
        let rules = ProxyRules::resolve(&ProxyConfig::FromEnvironment, env(vars)).unwrap();
        assert_eq!(via(&rules, "https://a.example/"), None);
    }
}

#[test]
fn loopback_targets_skip_environment_proxies_but_not_explicit_ones() {
    let from_env = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[("HTTPS_PROXY", "p:1"), ("HTTP_PROXY", "p:1")]),
    )
    .unwrap();
    let explicit =
        ProxyRules::resolve(&Proxy::new("http://p:1").unwrap().into(), env(&[])).unwrap();
    for target in [
        "http://127.0.0.1:5000/x",
        "https://localhost/x",
        "https://[::1]:443/",
    ] {
        assert_eq!(via(&from_env, target), None, "{target}");
        assert_eq!(via(&explicit, target), Some("p:1".into()), "{target}");
    }
}

#[test]
fn explicit_and_none_ignore_the_environment() {
    let vars = env(&[("HTTPS_PROXY", "http://from-env:1"), ("NO_PROXY", "*")]);
    let explicit =
        ProxyRules::resolve(&Proxy::new("http://mine:2").unwrap().into(), &vars).unwrap();
    assert_eq!(via(&explicit, "https://a.example/"), Some("mine:2".into()));
    let none = ProxyRules::resolve(&ProxyConfig::None, &vars).unwrap();
    assert_eq!(via(&none, "https://a.example/"), None);
}

#[test]
fn no_proxy_matches_names_suffixes_ips_networks_ports_and_star() {
    let rules = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[
            ("HTTPS_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                "example.com, .corp.example,*.wild.example,10.1.2.3,192.168.0.0/16,\
                 only.example:8443,[2001:db8::1]:443,2001:db8:ffff::/48,UPPER.Example.",
            ),
        ]),
    )
    .unwrap();
    for direct in [
        "https://example.com/",
        "https://sub.example.com/",
        "https://EXAMPLE.COM./",
        "https://corp.example/",
        "https://a.b.corp.example/",
        "https://x.wild.example/",
        "https://10.1.2.3/",
        "https://192.168.44.5:8443/",
        "https://only.example:8443/",
        "https://[2001:db8::1]/",
        "https://[2001:db8:ffff::5]/",
        "https://upper.example/",
    ] {
        assert_eq!(via(&rules, direct), None, "{direct}");
    }
    for proxied in [
        "https://notexample.com/",
        "https://example.com.evil/",
        "https://corp.example.org/",
        "https://10.1.2.4/",
        "https://192.169.0.1/",
        "https://only.example/",
        "https://[2001:db8::1]:8443/",
        "https://[2001:db8:fffe::5]/",
    ] {
        assert_eq!(via(&rules, proxied), Some("p:1".into()), "{proxied}");
    }
    let star = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[("HTTPS_PROXY", "p:1"), ("NO_PROXY", "*")]),
    )
    .unwrap();
    assert_eq!(via(&star, "https://anything.example/"), None);
}

#[test]
fn an_explicit_bypass_list_uses_the_same_syntax() {
    let proxy = Proxy::new("http://p:1")
        .unwrap()
        .bypass(["127.0.0.1", "internal.example,10.0.0.0/8"]);
    let rules = ProxyRules::resolve(&proxy.into(), env(&[])).unwrap();
    assert_eq!(via(&rules, "http://127.0.0.1:9/"), None);
    assert_eq!(via(&rules, "https://x.internal.example/"), None);
    assert_eq!(via(&rules, "https://10.9.9.9/"), None);
    assert_eq!(via(&rules, "http://localhost:9/"), Some("p:1".into()));
}

#[test]
fn proxy_urls_are_parsed_with_defaults_and_decoded_credentials() {
    let p = Proxy::new("proxy.example").unwrap();
    assert_eq!(p.authority, "proxy.example:80");
    assert!(p.credentials.is_none());
    let p = Proxy::new("http://us%40er:p%3Ass@[::1]:3128/").unwrap();
    assert_eq!(p.authority, "[::1]:3128");
    let c = p.credentials.as_ref().unwrap();
    assert_eq!((c.user.as_str(), c.password.as_str()), ("us@er", "p:ss"));
    let route = p.route().unwrap();
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "us@er:p:ss")
    );
    assert_eq!(route.authorization().unwrap(), expected.as_str());
    assert!(route.authorization().unwrap().is_sensitive());
    // basic_auth replaces the URL's credentials.
    let p = Proxy::new("http://a:b@h:1").unwrap().basic_auth("c", "d");
    let c = p.credentials.as_ref().unwrap();
    assert_eq!((c.user.as_str(), c.password.as_str()), ("c", "d"));
}

#[test]
fn unusable_proxy_urls_are_config_errors_without_the_password() {
    for bad in [
        "https://user:hunter2@proxy:3128",
        "socks5://user:hunter2@proxy:1080",
        "http://user:hunter2@proxy:3128/path",
        "http://user:hunter2@:3128",
        "http://user:hunter2@proxy:99999",
    ] {
        let err = Proxy::new(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn an_unusable_proxy_variable_is_ignored() {
    let rules = ProxyRules::resolve(
        &ProxyConfig::FromEnvironment,
        env(&[("https_proxy", "https://u:hunter2@proxy:1")]),
    )
    .expect("ignored, not an error");
    let target: http::Uri = "https://adb-1.example.net/x".parse().unwrap();
    assert!(rules.route(&target).is_none());
    assert!(!format!("{rules:?}").contains("hunter2"));
}

#[test]
fn debug_never_shows_the_password() {
    let proxy = Proxy::new("http://alice:hunter2@proxy:3128")
        .unwrap()
        .bypass(["internal.example"]);
    let config: ProxyConfig = proxy.clone().into();
    let rules = ProxyRules::resolve(&config, env(&[])).unwrap();
    for shown in [
        format!("{proxy:?}"),
        format!("{config:?}"),
        format!("{rules:?}"),
        format!("{:?}", proxy.clone().basic_auth("bob", "hunter2")),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("YWxpY2U6aHVudGVyMg"), "{shown}");
        assert!(shown.contains("proxy:3128"), "{shown}");
    }
    assert!(
        !format!("{proxy:?}").contains("alice"),
        "no user name either"
    );
}

#[test]
fn proxy_urls_are_shown_without_their_credentials_whatever_they_hold() {
    for (url, shown) in [
        ("alice:s3cret@proxy:99999", "proxy:99999"),
        ("http://alice:p#ss@proxy:3128", "http://proxy:3128"),
        ("http://alice:pa/ss@proxy:3128", "http://proxy:3128"),
        ("http://alice:p?ss@proxy:3128", "http://proxy:3128"),
        ("http://proxy:3128", "http://proxy:3128"),
    ] {
        assert_eq!(super::without_credentials(url), shown, "{url}");
    }
    for bad in [
        "alice:s3cret@proxy:99999",
        "ftp://alice:s3cret@proxy:21",
        "http://alice:s3cr#et@proxy:99999",
    ] {
        let err = Proxy::new(bad).expect_err(bad);
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("s3cr#et"),
            "{text}"
        );
    }
    let proxy = Proxy::new("http://proxy:3128")
        .expect("proxy")
        .basic_auth("alice-the-user", "pw");
    let shown = format!("{proxy:?}");
    assert!(
        !shown.contains("alice-the-user") && !shown.contains("pw\""),
        "{shown}"
    );
}
