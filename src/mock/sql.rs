//! Recognition of the statements the mock warehouse understands: turns SQL text into a
//! [`Statement`] (a result generator, a DML count, a session command or an error to report).
//!
//! Matching is on tokens, so case and whitespace do not matter: `select  *  FROM Range( 10 );`
//! is `SELECT * FROM range(10)`.

/// What a statement asks the mock warehouse to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `SELECT <integer>`: one row, one column named after the literal.
    SelectInt {
        /// The literal as written (the column name).
        text: String,
        /// Its value.
        value: i64,
    },
    /// `SELECT * FROM range(N)` or `range(START, END)`: column `id BIGINT` from START to END-1.
    Range {
        /// First id.
        start: i64,
        /// One past the last id.
        end: i64,
    },
    /// `SELECT * FROM mock.rows(N)`: the five-column generator.
    MockRows(u64),
    /// `SELECT * FROM mock.all_types`: one column of each type, four rows.
    AllTypes,
    /// `SELECT :a [AS x], :b ...` or `SELECT ? [AS x], ? ...`: one row, one `STRING` column per
    /// marker holding the bound parameter's text.
    SelectParams(Vec<(Marker, String)>),
    /// `SELECT sleep(MS)`: runs for MS milliseconds, then answers one row.
    Sleep(u64),
    /// `SELECT current_catalog()`.
    CurrentCatalog,
    /// `SELECT current_schema()` / `current_database()`.
    CurrentSchema,
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`: no result set, `rows` modified.
    Dml {
        /// Rows affected.
        rows: i64,
    },
    /// `USE [CATALOG|SCHEMA|DATABASE] name`: changes the session's namespace.
    Use {
        /// New catalog, when named.
        catalog: Option<String>,
        /// New schema, when named.
        schema: Option<String>,
    },
    /// A command with no result set and no row count (`SET`, `CREATE`, `DROP`...).
    Command,
    /// A query on a table the warehouse does not have (SQLSTATE 42P01).
    UnknownTable(String),
    /// Text the warehouse cannot parse (SQLSTATE 42601).
    Syntax(String),
    /// `PUT`, `GET` or `REMOVE` of a Unity Catalog volume file.
    Staging(super::staging::Command),
}

/// A parameter marker: `:name`, or the n-th `?` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Marker {
    /// `:name` (the name lower-cased, as every word the mock reads).
    Named(String),
    /// The n-th `?`.
    Positional(usize),
}

/// Rows an `UPDATE`, `DELETE`, `MERGE` or `INSERT ... SELECT` reports as affected.
pub(crate) const FIXED_DML_ROWS: i64 = 1;

/// Canonical form of SQL text for matching registered results: trimmed, trailing `;` removed,
/// whitespace runs collapsed to one space, lower case.
pub(crate) fn normalize(sql: &str) -> String {
    let trimmed = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let mut out = String::with_capacity(trimmed.len());
    for word in trimmed.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Identifier or keyword, lower-cased (quoted identifiers keep their case).
    Word(String),
    /// Unsigned integer literal, as written.
    Int(String),
    /// Any other single character (punctuation, operators).
    Punct(char),
    /// A string literal (content only).
    Str,
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    w.push(c.to_ascii_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            toks.push(Tok::Word(w));
        } else if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_digit() {
                    n.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            toks.push(Tok::Int(n));
        } else if c == '`' || c == '"' {
            chars.next();
            let mut w = String::new();
            for c2 in chars.by_ref() {
                if c2 == c {
                    break;
                }
                w.push(c2);
            }
            toks.push(Tok::Word(w));
        } else if c == '\'' {
            chars.next();
            for c2 in chars.by_ref() {
                if c2 == '\'' {
                    break;
                }
            }
            toks.push(Tok::Str);
        } else {
            chars.next();
            toks.push(Tok::Punct(c));
        }
    }
    while toks.last() == Some(&Tok::Punct(';')) {
        toks.pop();
    }
    toks
}

fn word(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Word(w)) => Some(w),
        _ => None,
    }
}

fn int<T: std::str::FromStr>(t: Option<&Tok>) -> Option<T> {
    match t {
        Some(Tok::Int(n)) => n.parse().ok(),
        _ => None,
    }
}

fn is(t: Option<&Tok>, c: char) -> bool {
    t == Some(&Tok::Punct(c))
}

/// Recognise `sql`. Never fails: what is not understood becomes [`Statement::Syntax`] or
/// [`Statement::UnknownTable`].
pub(crate) fn parse(sql: &str) -> Statement {
    let toks = tokenize(sql);
    let Some(first) = word(toks.first()) else {
        return Statement::Syntax(if toks.is_empty() {
            "the statement is empty".into()
        } else {
            "the statement does not start with a keyword".into()
        });
    };
    match first {
        "select" => parse_select(&toks),
        "insert" => Statement::Dml {
            rows: count_values_rows(&toks).unwrap_or(FIXED_DML_ROWS),
        },
        "update" | "delete" | "merge" => Statement::Dml {
            rows: FIXED_DML_ROWS,
        },
        "use" => parse_use(&toks),
        "put" | "get" | "remove" => match super::staging::parse(sql) {
            Ok(command) => Statement::Staging(command),
            Err(detail) => Statement::Syntax(detail),
        },
        "set" | "reset" | "create" | "drop" | "alter" | "truncate" | "grant" | "revoke"
        | "refresh" | "cache" | "uncache" | "clear" | "analyze" | "optimize" | "vacuum"
        | "comment" | "msck" => Statement::Command,
        other => Statement::Syntax(format!(
            "the mock warehouse does not understand statements starting with `{other}`"
        )),
    }
}

/// `SELECT <marker> [AS alias], ...` with nothing else: the markers and column names.
fn select_markers(t: &[Tok]) -> Option<Vec<(Marker, String)>> {
    let mut items = Vec::new();
    let mut rest = t.get(1..)?;
    let mut positional = 0;
    loop {
        let (marker, name, after) = match rest {
            [Tok::Punct(':'), Tok::Word(name), after @ ..] => {
                (Marker::Named(name.clone()), name.clone(), after)
            }
            [Tok::Punct('?'), after @ ..] => {
                positional += 1;
                (
                    Marker::Positional(positional),
                    format!("?{positional}"),
                    after,
                )
            }
            _ => return None,
        };
        let (name, after) = match after {
            [Tok::Word(w), Tok::Word(alias), more @ ..] if w == "as" => (alias.clone(), more),
            _ => (name, after),
        };
        items.push((marker, name));
        match after {
            [] => return Some(items),
            [Tok::Punct(','), more @ ..] => rest = more,
            _ => return None,
        }
    }
}

fn parse_select(t: &[Tok]) -> Statement {
    if let Some(markers) = select_markers(t) {
        return Statement::SelectParams(markers);
    }
    let g = |i: usize| t.get(i);
    // SELECT <int>
    if t.len() == 2 {
        if let Some(Tok::Int(text)) = g(1) {
            if let Ok(value) = text.parse() {
                return Statement::SelectInt {
                    text: text.clone(),
                    value,
                };
            }
        }
    }
    // SELECT sleep(MS)
    if t.len() == 5 && word(g(1)) == Some("sleep") && is(g(2), '(') && is(g(4), ')') {
        if let Some(ms) = int(g(3)) {
            return Statement::Sleep(ms);
        }
    }
    // SELECT current_catalog() / current_schema() / current_database()
    if t.len() == 4 && is(g(2), '(') && is(g(3), ')') {
        match word(g(1)) {
            Some("current_catalog") => return Statement::CurrentCatalog,
            Some("current_schema" | "current_database") => return Statement::CurrentSchema,
            _ => {}
        }
    }
    // SELECT * FROM ...
    if is(g(1), '*') && word(g(2)) == Some("from") {
        let rest = &t[3..];
        match rest {
            [Tok::Word(f), Tok::Punct('('), n, Tok::Punct(')')] if f == "range" => {
                if let Some(end) = int(Some(n)) {
                    return Statement::Range { start: 0, end };
                }
            }
            [Tok::Word(f), Tok::Punct('('), a, Tok::Punct(','), b, Tok::Punct(')')]
                if f == "range" =>
            {
                if let (Some(start), Some(end)) = (int(Some(a)), int(Some(b))) {
                    return Statement::Range { start, end };
                }
            }
            [Tok::Word(m), Tok::Punct('.'), Tok::Word(t)] if m == "mock" && t == "all_types" => {
                return Statement::AllTypes;
            }
            [Tok::Word(m), Tok::Punct('.'), Tok::Word(r), Tok::Punct('('), n, Tok::Punct(')')]
                if m == "mock" && r == "rows" =>
            {
                if let Some(n) = int(Some(n)) {
                    return Statement::MockRows(n);
                }
            }
            _ => {}
        }
    }
    // Any other SELECT ... FROM <table>
    if let Some(from) = t.iter().position(|x| word(Some(x)) == Some("from")) {
        let mut name = String::new();
        let mut i = from + 1;
        while let Some(w) = word(t.get(i)) {
            name.push_str(w);
            if is(t.get(i + 1), '.') {
                name.push('.');
                i += 2;
            } else {
                break;
            }
        }
        if is(t.get(i + 1), '(') && !name.is_empty() {
            return Statement::Syntax(format!(
                "the table function `{name}` is not supported by the mock warehouse or its arguments are invalid"
            ));
        }
        if !name.is_empty() {
            return Statement::UnknownTable(name);
        }
    }
    Statement::Syntax("the mock warehouse does not understand this SELECT".into())
}

/// `INSERT ... VALUES (..), (..)`: the number of parenthesised tuples after `VALUES`.
fn count_values_rows(t: &[Tok]) -> Option<i64> {
    let start = t.iter().position(|x| word(Some(x)) == Some("values"))?;
    let mut depth = 0usize;
    let mut rows = 0i64;
    for tok in &t[start + 1..] {
        match tok {
            Tok::Punct('(') => {
                if depth == 0 {
                    rows += 1;
                }
                depth += 1;
            }
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (rows > 0).then_some(rows)
}

fn parse_use(t: &[Tok]) -> Statement {
    let (kind, name_at) = match word(t.get(1)) {
        Some("catalog") => ("catalog", 2),
        Some("schema" | "database") => ("schema", 2),
        _ => ("any", 1),
    };
    let a = word(t.get(name_at)).map(str::to_string);
    let b = if is(t.get(name_at + 1), '.') {
        word(t.get(name_at + 2)).map(str::to_string)
    } else {
        None
    };
    match (kind, a, b) {
        ("catalog", Some(c), None) => Statement::Use {
            catalog: Some(c),
            schema: None,
        },
        ("any" | "schema", Some(c), Some(s)) => Statement::Use {
            catalog: Some(c),
            schema: Some(s),
        },
        ("any" | "schema", Some(s), None) => Statement::Use {
            catalog: None,
            schema: Some(s),
        },
        _ => Statement::Syntax("USE needs a catalog or schema name".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_one_is_recognised_in_any_case_and_spacing() {
        for sql in ["SELECT 1", "select 1", "  Select\n\t1 ;", "SELECT 1;;"] {
            assert_eq!(
                parse(sql),
                Statement::SelectInt {
                    text: "1".into(),
                    value: 1
                },
                "{sql}"
            );
        }
    }

    #[test]
    fn range_and_mock_rows_take_their_argument() {
        assert_eq!(
            parse("SELECT * FROM range(10)"),
            Statement::Range { start: 0, end: 10 }
        );
        assert_eq!(
            parse("select *   from RANGE ( 0 )"),
            Statement::Range { start: 0, end: 0 }
        );
        assert_eq!(
            parse("SELECT * FROM range(5, 8)"),
            Statement::Range { start: 5, end: 8 }
        );
        assert_eq!(
            parse("SELECT * FROM mock.rows(1000)"),
            Statement::MockRows(1000)
        );
        assert_eq!(
            parse("select * from Mock . Rows(10000000);"),
            Statement::MockRows(10_000_000)
        );
    }

    #[test]
    fn selecting_only_parameter_markers_is_recognised() {
        assert_eq!(
            parse("SELECT :id AS Key, :Name"),
            Statement::SelectParams(vec![
                (Marker::Named("id".into()), "key".into()),
                (Marker::Named("name".into()), "name".into()),
            ])
        );
        assert_eq!(
            parse("select ?, ? as b"),
            Statement::SelectParams(vec![
                (Marker::Positional(1), "?1".into()),
                (Marker::Positional(2), "b".into()),
            ])
        );
        assert!(matches!(
            parse("SELECT :id FROM t"),
            Statement::UnknownTable(_)
        ));
        assert!(matches!(parse("SELECT :"), Statement::Syntax(_)));
    }

    #[test]
    fn sleep_takes_milliseconds() {
        assert_eq!(parse("SELECT sleep(250)"), Statement::Sleep(250));
        assert_eq!(parse("select SLEEP( 0 )"), Statement::Sleep(0));
    }

    #[test]
    fn other_tables_are_unknown_with_their_qualified_name() {
        assert_eq!(
            parse("SELECT a, b FROM main.sales.orders WHERE x = 1"),
            Statement::UnknownTable("main.sales.orders".into())
        );
        assert_eq!(
            parse("select * from no_such_table"),
            Statement::UnknownTable("no_such_table".into())
        );
    }

    #[test]
    fn bad_table_function_arguments_are_syntax_errors() {
        assert!(matches!(
            parse("SELECT * FROM range(abc)"),
            Statement::Syntax(_)
        ));
        assert!(matches!(parse(""), Statement::Syntax(_)));
        assert!(matches!(parse("  ;  "), Statement::Syntax(_)));
        assert!(matches!(parse("SELECT 'x'"), Statement::Syntax(_)));
        assert!(matches!(parse("FROB the table"), Statement::Syntax(_)));
    }

    #[test]
    fn insert_counts_values_tuples() {
        assert_eq!(
            parse("INSERT INTO t VALUES (1, 'a'), (2, 'b (x)'), (3, f(4))"),
            Statement::Dml { rows: 3 }
        );
        assert_eq!(
            parse("insert into t select * from s"),
            Statement::Dml {
                rows: FIXED_DML_ROWS
            }
        );
        assert_eq!(
            parse("UPDATE t SET a = 1"),
            Statement::Dml {
                rows: FIXED_DML_ROWS
            }
        );
        assert_eq!(
            parse("delete from t"),
            Statement::Dml {
                rows: FIXED_DML_ROWS
            }
        );
    }

    #[test]
    fn use_changes_catalog_or_schema() {
        assert_eq!(
            parse("USE CATALOG main"),
            Statement::Use {
                catalog: Some("main".into()),
                schema: None
            }
        );
        assert_eq!(
            parse("use schema sales"),
            Statement::Use {
                catalog: None,
                schema: Some("sales".into())
            }
        );
        assert_eq!(
            parse("USE main.sales"),
            Statement::Use {
                catalog: Some("main".into()),
                schema: Some("sales".into())
            }
        );
        assert_eq!(parse("SET x = 1"), Statement::Command);
    }

    #[test]
    fn normalize_ignores_case_whitespace_and_semicolons() {
        assert_eq!(
            normalize("  SELECT  a,\n b FROM t ;"),
            normalize("select a, b from t")
        );
        assert_ne!(normalize("select a from t"), normalize("select b from t"));
    }
}
