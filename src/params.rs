//! Native query parameters: values bound to `:name` or `?` markers by the server, never spliced
//! into the SQL text.
//!
//! A parameter goes on the wire (`TSparkParameter`, protocol SPARK V8 and later) as a SQL type
//! name and the value's text, which the server casts to that type; NULL is a type without a
//! value. [`ToSql`] says how a Rust value becomes a [`SqlValue`]:
//!
//! | Rust | SQL type | text |
//! |---|---|---|
//! | `bool` | `BOOLEAN` | `true` / `false` |
//! | `i8`, `i16`, `i32`, `i64` | `TINYINT`, `SMALLINT`, `INT`, `BIGINT` | decimal digits |
//! | `u8`, `u16`, `u32`, `u64` | `SMALLINT`, `INT`, `BIGINT`, `DECIMAL(20,0)` (the next signed type that holds every value) | decimal digits |
//! | `f32`, `f64` | `FLOAT`, `DOUBLE` | the shortest text that reads back as the same value (`0.1`, `1.0`, `1e300`); `NaN`, `Infinity`, `-Infinity` |
//! | `&str`, `String` | `STRING` | as is |
//! | `&[u8]`, `[u8; N]`, `Vec<u8>` | `BINARY` | the bytes, which must be UTF-8 (the value travels as text) |
//! | [`Decimal`] | `DECIMAL(p,s)` (p = its digits, at least s and 1) | exact digits, never through a float |
//! | `chrono::NaiveDate` | `DATE` | `YYYY-MM-DD` |
//! | `chrono::NaiveDateTime` | `TIMESTAMP_NTZ` | `YYYY-MM-DD HH:MM:SS[.fffffffff]` |
//! | `chrono::DateTime<Tz>` | `TIMESTAMP` | `YYYY-MM-DDTHH:MM:SS[.fffffffff]+HH:MM` (its own offset: the instant is exact) |
//! | `std::time::SystemTime` | `TIMESTAMP` | as `DateTime<Utc>` |
//! | `Option<T>` | `T`'s type | `None` is a NULL of that type |
//! | [`SqlValue`] | any | any: the escape hatch for `INTERVAL`, `TIMESTAMP_NTZ` text, ... |
//! | `&dyn ToSql`, `Box<dyn ToSql + Send + Sync>` | the value's | the value's (a `None` of these is `VOID`) |
//!
//! [`Params`] holds the parameters of one statement, all named or all positional; build it with
//! the [`params!`](crate::params!) macro or its methods.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};

use crate::error::{Error, Result};
use crate::thrift::tcli::{TSparkParameter, TSparkParameterValue};

/// The most parameters one statement may carry; more is an error before anything is sent.
pub const MAX_PARAMETERS: usize = 256;

/// A parameter value as it goes on the wire: a SQL type name and the value's text (`None`: a
/// NULL of that type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlValue {
    sql_type: String,
    text: Option<String>,
}

impl SqlValue {
    /// A value of `sql_type` (e.g. `INTERVAL DAY TO SECOND`, `TIMESTAMP_NTZ`, `DECIMAL(20,2)`)
    /// given as the text the server casts to it (e.g. `INTERVAL '1 02:03:04' DAY TO SECOND` is
    /// `SqlValue::new("INTERVAL DAY TO SECOND", "1 02:03:04")`).
    pub fn new(sql_type: impl Into<String>, text: impl Into<String>) -> Self {
        SqlValue {
            sql_type: sql_type.into(),
            text: Some(text.into()),
        }
    }

    /// A NULL of `sql_type`.
    pub fn null(sql_type: impl Into<String>) -> Self {
        SqlValue {
            sql_type: sql_type.into(),
            text: None,
        }
    }

    /// A NULL without a type (`VOID`).
    pub fn void() -> Self {
        Self::null("VOID")
    }

    /// The SQL type name.
    pub fn sql_type(&self) -> &str {
        &self.sql_type
    }

    /// The value's text; `None` for NULL.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

/// A Rust value that can be bound to a query parameter. Implement it for your own types (for
/// example a newtype that binds as `STRING`) by returning a [`SqlValue`].
pub trait ToSql {
    /// The value as a parameter; an error when it cannot be sent (e.g. bytes that are not
    /// UTF-8), reported when the statement is executed, before anything is sent.
    fn to_sql(&self) -> Result<SqlValue>;

    /// The SQL type of a NULL of this Rust type (what `None::<Self>` binds as).
    fn null_sql_type() -> String
    where
        Self: Sized;
}

impl<T: ToSql> ToSql for &T {
    fn to_sql(&self) -> Result<SqlValue> {
        (**self).to_sql()
    }
    fn null_sql_type() -> String {
        T::null_sql_type()
    }
}

impl ToSql for &str {
    fn to_sql(&self) -> Result<SqlValue> {
        (**self).to_sql()
    }
    fn null_sql_type() -> String {
        "STRING".to_string()
    }
}

impl ToSql for &[u8] {
    fn to_sql(&self) -> Result<SqlValue> {
        (**self).to_sql()
    }
    fn null_sql_type() -> String {
        "BINARY".to_string()
    }
}

impl<const N: usize> ToSql for [u8; N] {
    fn to_sql(&self) -> Result<SqlValue> {
        self.as_slice().to_sql()
    }
    fn null_sql_type() -> String {
        "BINARY".to_string()
    }
}

/// A boxed or borrowed `dyn ToSql`, for lists of parameters of mixed types.
impl ToSql for &dyn ToSql {
    fn to_sql(&self) -> Result<SqlValue> {
        (**self).to_sql()
    }
    fn null_sql_type() -> String {
        "VOID".to_string()
    }
}

impl ToSql for Box<dyn ToSql + Send + Sync> {
    fn to_sql(&self) -> Result<SqlValue> {
        (**self).to_sql()
    }
    fn null_sql_type() -> String {
        "VOID".to_string()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> Result<SqlValue> {
        match self {
            Some(v) => v.to_sql(),
            None => Ok(SqlValue::null(T::null_sql_type())),
        }
    }
    fn null_sql_type() -> String {
        T::null_sql_type()
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> Result<SqlValue> {
        Ok(self.clone())
    }
    fn null_sql_type() -> String {
        "VOID".to_string()
    }
}

macro_rules! to_sql_display {
    ($($t:ty => $name:literal),* $(,)?) => {
        $(impl ToSql for $t {
            fn to_sql(&self) -> Result<SqlValue> {
                Ok(SqlValue::new($name, self.to_string()))
            }
            fn null_sql_type() -> String {
                $name.to_string()
            }
        })*
    };
}

to_sql_display!(
    bool => "BOOLEAN",
    i8 => "TINYINT",
    i16 => "SMALLINT",
    i32 => "INT",
    i64 => "BIGINT",
    u8 => "SMALLINT",
    u16 => "INT",
    u32 => "BIGINT",
    u64 => "DECIMAL(20,0)",
    String => "STRING",
);

impl ToSql for str {
    fn to_sql(&self) -> Result<SqlValue> {
        Ok(SqlValue::new("STRING", self))
    }
}

/// A float's text: Rust's shortest round-trip form (`0.1`, `1.0`, `1e300`), and the names
/// Spark reads for the non-finite values.
fn float_text(v: f64, finite: impl FnOnce() -> String) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "Infinity".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        finite()
    }
}

impl ToSql for f32 {
    fn to_sql(&self) -> Result<SqlValue> {
        let v = *self;
        Ok(SqlValue::new(
            "FLOAT",
            float_text(f64::from(v), || format!("{v:?}")),
        ))
    }
    fn null_sql_type() -> String {
        "FLOAT".to_string()
    }
}

impl ToSql for f64 {
    fn to_sql(&self) -> Result<SqlValue> {
        let v = *self;
        Ok(SqlValue::new("DOUBLE", float_text(v, || format!("{v:?}"))))
    }
    fn null_sql_type() -> String {
        "DOUBLE".to_string()
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> Result<SqlValue> {
        let text = std::str::from_utf8(self).map_err(|e| {
            Error::config(format!(
                "a BINARY parameter of {} bytes is not UTF-8 (invalid at byte {}): parameters travel as text",
                self.len(),
                e.valid_up_to()
            ))
        })?;
        Ok(SqlValue::new("BINARY", text))
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> Result<SqlValue> {
        self.as_slice().to_sql()
    }
    fn null_sql_type() -> String {
        "BINARY".to_string()
    }
}

/// `YYYY-MM-DD` (years outside 0..=9999 with their sign and at least four digits).
fn push_date(out: &mut String, date: NaiveDate) {
    use std::fmt::Write as _;
    let year = date.year();
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{year:+05}");
    }
    let _ = write!(out, "-{:02}-{:02}", date.month(), date.day());
}

/// `HH:MM:SS` and, when not zero, the fraction with its trailing zeros removed.
fn push_time(out: &mut String, time: &impl Timelike) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        time.hour(),
        time.minute(),
        time.second()
    );
    // A leap second is kept in the nanoseconds (>= 10^9): show it as :59.999999999... like
    // the nanoseconds the clock gave.
    let nanos = time.nanosecond().min(999_999_999);
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
}

impl ToSql for NaiveDate {
    fn to_sql(&self) -> Result<SqlValue> {
        let mut text = String::with_capacity(10);
        push_date(&mut text, *self);
        Ok(SqlValue::new("DATE", text))
    }
    fn null_sql_type() -> String {
        "DATE".to_string()
    }
}

impl ToSql for NaiveDateTime {
    fn to_sql(&self) -> Result<SqlValue> {
        let mut text = String::with_capacity(29);
        push_date(&mut text, self.date());
        text.push(' ');
        push_time(&mut text, self);
        Ok(SqlValue::new("TIMESTAMP_NTZ", text))
    }
    fn null_sql_type() -> String {
        "TIMESTAMP_NTZ".to_string()
    }
}

impl<Tz: TimeZone> ToSql for DateTime<Tz> {
    fn to_sql(&self) -> Result<SqlValue> {
        use std::fmt::Write as _;
        let offset = self.offset().fix().local_minus_utc();
        let local = self.naive_local();
        let mut text = String::with_capacity(35);
        push_date(&mut text, local.date());
        text.push('T');
        push_time(&mut text, &local);
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let _ = write!(text, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60);
        if !abs.is_multiple_of(60) {
            let _ = write!(text, ":{:02}", abs % 60);
        }
        Ok(SqlValue::new("TIMESTAMP", text))
    }
    fn null_sql_type() -> String {
        "TIMESTAMP".to_string()
    }
}

impl ToSql for SystemTime {
    fn to_sql(&self) -> Result<SqlValue> {
        let utc = match self.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs())
                .ok()
                .and_then(|s| DateTime::<Utc>::from_timestamp(s, after.subsec_nanos())),
            Err(before) => {
                let before = before.duration();
                let (secs, nanos) = match before.subsec_nanos() {
                    0 => (before.as_secs(), 0),
                    n => (before.as_secs().saturating_add(1), 1_000_000_000 - n),
                };
                i64::try_from(secs)
                    .ok()
                    .and_then(|s| DateTime::<Utc>::from_timestamp(-s, nanos))
            }
        };
        utc.ok_or_else(|| {
            Error::config("a SystemTime parameter is outside the dates SQL can hold")
        })?
        .to_sql()
    }
    fn null_sql_type() -> String {
        "TIMESTAMP".to_string()
    }
}

/// An exact decimal number: an integer of at most 38 digits and a scale (digits after the
/// point), bound as `DECIMAL(p,s)` without ever going through a float. Equality compares
/// digits and scale: `1.5` and `1.50` are different values (they bind as different types).
///
/// ```
/// # use databricks_sql::params::Decimal;
/// let price: Decimal = "-1234.50".parse()?;
/// assert_eq!(price.to_string(), "-1234.50");
/// assert_eq!(Decimal::new(-123450, 2)?, price);
/// # Ok::<(), databricks_sql::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    unscaled: i128,
    scale: u8,
}

/// The largest precision of a SQL decimal: 38 digits.
const MAX_DECIMAL_DIGITS: u32 = 38;

impl Decimal {
    /// `unscaled × 10^-scale`. Fails when `unscaled` has more than 38 digits or `scale` is
    /// over 38.
    pub fn new(unscaled: i128, scale: u8) -> Result<Self> {
        if u32::from(scale) > MAX_DECIMAL_DIGITS {
            return Err(Error::config(format!(
                "a decimal's scale is at most {MAX_DECIMAL_DIGITS}, got {scale}"
            )));
        }
        if digits(unscaled) > MAX_DECIMAL_DIGITS {
            return Err(Error::config(format!(
                "a decimal has at most {MAX_DECIMAL_DIGITS} digits, got {}",
                digits(unscaled)
            )));
        }
        Ok(Decimal { unscaled, scale })
    }

    /// The integer of digits (the value times 10^scale).
    pub fn unscaled(&self) -> i128 {
        self.unscaled
    }

    /// Digits after the decimal point.
    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// The SQL precision: the digits, at least the scale and at least 1.
    pub fn precision(&self) -> u8 {
        // At most 38: `new` checked the digits and the scale.
        digits(self.unscaled).max(u32::from(self.scale)).max(1) as u8
    }
}

/// Decimal digits of `v`'s magnitude (1 for 0).
fn digits(v: i128) -> u32 {
    v.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1)
}

impl std::str::FromStr for Decimal {
    type Err = Error;

    /// Parses `[-+]digits[.digits]`; the scale is the number of digits after the point, so
    /// `"1.50"` keeps its two.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            let shown: String = text.chars().take(64).collect();
            Error::config(format!("{shown:?} is not a decimal number"))
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let scale = u8::try_from(fraction.len())
            .ok()
            .filter(|s| u32::from(*s) <= MAX_DECIMAL_DIGITS)
            .ok_or_else(|| {
                Error::config(format!(
                    "a decimal's scale is at most {MAX_DECIMAL_DIGITS}, got {}",
                    fraction.len()
                ))
            })?;
        let mut unscaled: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            unscaled = unscaled
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(|| {
                    Error::config(format!(
                        "a decimal has at most {MAX_DECIMAL_DIGITS} digits: {:?} has more",
                        text.chars().take(64).collect::<String>()
                    ))
                })?;
        }
        Decimal::new(if negative { -unscaled } else { unscaled }, scale)
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The scale is at most 38 (`Decimal::new`), so it fits an i8.
        let scale = i8::try_from(self.scale).unwrap_or(i8::MAX);
        f.write_str(&decimal_text(&self.unscaled.to_string(), scale))
    }
}

/// A decimal's text from the text of its unscaled integer and its scale (negative: that many
/// zeros appended): [`Decimal`]'s `Display`, and the text typed rows give decimal columns.
pub(crate) fn decimal_text(unscaled: &str, scale: i8) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", unscaled),
    };
    if scale <= 0 {
        if digits == "0" {
            return "0".to_string();
        }
        let zeros = usize::from(scale.unsigned_abs());
        return format!("{sign}{digits}{}", "0".repeat(zeros));
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

impl ToSql for Decimal {
    fn to_sql(&self) -> Result<SqlValue> {
        Ok(SqlValue::new(
            format!("DECIMAL({},{})", self.precision(), self.scale),
            self.to_string(),
        ))
    }
    fn null_sql_type() -> String {
        "DECIMAL(38,18)".to_string()
    }
}

/// One parameter: its name (positional parameters have none) and its value, or why it cannot
/// be sent.
#[derive(Clone)]
struct Param {
    name: Option<String>,
    value: std::result::Result<SqlValue, String>,
}

/// Names and types only: values may be confidential, and `Debug` output ends up in logs.
impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sql_type = match &self.value {
            Ok(v) => v.sql_type.as_str(),
            Err(_) => "<invalid>",
        };
        match &self.name {
            Some(name) => write!(f, ":{name} {sql_type}"),
            None => write!(f, "? {sql_type}"),
        }
    }
}

/// The parameters of one statement: all named (`:name` markers) or all positional (`?`
/// markers, in order). Mixing the two, more than [`MAX_PARAMETERS`], a name that is not an
/// identifier, or a value that cannot be sent is an error when the statement is executed,
/// before anything is sent.
///
/// ```
/// use databricks_sql::params;
/// let named = params![id => 42, name => "alice", score => None::<f64>];
/// let positional = params![42, "alice"];
/// assert_eq!((named.len(), positional.len()), (3, 2));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Params {
    items: Vec<Param>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the value of the `:name` marker (`name` without the colon).
    pub fn named(mut self, name: impl Into<String>, value: impl ToSql) -> Self {
        self.items.push(Param {
            name: Some(name.into()),
            value: value.to_sql().map_err(|e| e.message().to_string()),
        });
        self
    }

    /// Adds the value of the next `?` marker.
    pub fn positional(mut self, value: impl ToSql) -> Self {
        self.items.push(Param {
            name: None,
            value: value.to_sql().map_err(|e| e.message().to_string()),
        });
        self
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The parameters as sent: `TSparkParameter`s with a name, or with their 1-based position
    /// as the ordinal; `None` when there are none. Checks everything [`Params`] promises.
    pub(crate) fn to_thrift(&self) -> Result<Option<Vec<TSparkParameter>>> {
        if self.items.is_empty() {
            return Ok(None);
        }
        if self.items.len() > MAX_PARAMETERS {
            return Err(Error::config(format!(
                "a statement takes at most {MAX_PARAMETERS} parameters, got {}",
                self.items.len()
            )));
        }
        let named = self.items.iter().filter(|p| p.name.is_some()).count();
        if named != 0 && named != self.items.len() {
            return Err(Error::config(format!(
                "named and positional parameters cannot be mixed in one statement ({named} named, {} positional)",
                self.items.len() - named
            )));
        }
        let mut out = Vec::with_capacity(self.items.len());
        let mut names = std::collections::HashSet::new();
        for (index, param) in self.items.iter().enumerate() {
            if let Some(name) = &param.name {
                if !names.insert(name.to_ascii_lowercase()) {
                    return Err(Error::config(format!("parameter :{name} is given twice")));
                }
            }
            let which = match &param.name {
                Some(name) => format!("parameter :{name}"),
                None => format!("parameter {}", index + 1),
            };
            if let Some(name) = &param.name {
                let identifier = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !identifier {
                    return Err(Error::config(format!(
                        "parameter name {name:?} is not an identifier (letters, digits and _, not starting with a digit; no leading ':')"
                    )));
                }
            }
            let value = param
                .value
                .as_ref()
                .map_err(|e| Error::config(format!("{which}: {e}")))?;
            let ordinal = match param.name {
                Some(_) => None,
                None => Some(i32::try_from(index + 1).unwrap_or(i32::MAX)),
            };
            out.push(TSparkParameter::new(
                ordinal,
                param.name.clone(),
                Some(value.sql_type.clone()),
                value.text.clone().map(TSparkParameterValue::StringValue),
                None,
            ));
        }
        Ok(Some(out))
    }
}

/// Builds [`Params`](crate::params::Params): `params![name => value, ...]` for named markers
/// (`:name`; names are identifiers or string literals), `params![value, ...]` for positional
/// ones (`?`), `params![]` for none. A name is taken as written: `params![id => x]` binds `:id`
/// whatever a variable `id` holds (for names held in variables, use
/// [`Params::named`](crate::params::Params::named)). Each value is anything that implements
/// [`ToSql`](crate::params::ToSql).
///
/// ```
/// use databricks_sql::params;
/// let p = params![id => 7_i64, "order_date" => "2024-01-31"];
/// assert_eq!(p.len(), 2);
/// ```
#[macro_export]
macro_rules! params {
    (@name $name:ident) => {
        stringify!($name)
    };
    (@name $name:literal) => {
        $name
    };
    () => {
        $crate::params::Params::new()
    };
    ($($name:tt => $value:expr),+ $(,)?) => {
        $crate::params::Params::new()$(.named($crate::params!(@name $name), $value))+
    };
    ($($value:expr),+ $(,)?) => {
        $crate::params::Params::new()$(.positional($value))+
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use chrono::FixedOffset;

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(decimal_text("123456789", 4), "12345.6789");
        assert_eq!(decimal_text("-5", 4), "-0.0005");
        assert_eq!(decimal_text("0", 2), "0.00");
        assert_eq!(decimal_text("12", 0), "12");
        assert_eq!(decimal_text("-12", -2), "-1200");
    }

    fn sql(v: impl ToSql) -> (String, Option<String>) {
        let v = v.to_sql().unwrap();
        (v.sql_type().to_string(), v.text().map(str::to_string))
    }

    fn some(t: &str, v: &str) -> (String, Option<String>) {
        (t.to_string(), Some(v.to_string()))
    }

    #[test]
    fn scalars_bind_with_their_sql_types() {
        assert_eq!(sql(true), some("BOOLEAN", "true"));
        assert_eq!(sql(-128_i8), some("TINYINT", "-128"));
        assert_eq!(sql(i16::MAX), some("SMALLINT", "32767"));
        assert_eq!(sql(i32::MIN), some("INT", "-2147483648"));
        assert_eq!(sql(i64::MAX), some("BIGINT", "9223372036854775807"));
        assert_eq!(sql(0.1_f64), some("DOUBLE", "0.1"));
        assert_eq!(sql(1e300_f64), some("DOUBLE", "1e300"));
        assert_eq!(sql(0.1_f32), some("FLOAT", "0.1"));
        assert_eq!(sql(f64::NAN), some("DOUBLE", "NaN"));
        assert_eq!(sql(f32::NEG_INFINITY), some("FLOAT", "-Infinity"));
        assert_eq!(sql("it's"), some("STRING", "it's"));
        assert_eq!(sql(String::from("x")), some("STRING", "x"));
        assert_eq!(sql(&b"abc"[..]), some("BINARY", "abc"));
        assert_eq!(sql(b"abc".to_vec()), some("BINARY", "abc"));
    }

    #[test]
    fn unsigned_integers_bind_as_the_next_signed_type_that_holds_them() {
        assert_eq!(sql(u8::MAX), some("SMALLINT", "255"));
        assert_eq!(sql(u16::MAX), some("INT", "65535"));
        assert_eq!(sql(u32::MAX), some("BIGINT", "4294967295"));
        assert_eq!(sql(u64::MAX), some("DECIMAL(20,0)", "18446744073709551615"));
        assert_eq!(sql(*b"ab"), some("BINARY", "ab"));
        assert_eq!(sql(None::<&str>), ("STRING".to_string(), None));
    }

    #[test]
    fn values_of_mixed_types_can_be_listed_as_trait_objects() {
        let values: Vec<Box<dyn ToSql + Send + Sync>> =
            vec![Box::new(1_i64), Box::new("x"), Box::new(None::<f64>)];
        let p = values
            .into_iter()
            .fold(Params::new(), |p, v| p.positional(v));
        let sent = p.to_thrift().unwrap().unwrap();
        let types: Vec<_> = sent.iter().map(|p| p.type_.clone().unwrap()).collect();
        assert_eq!(types, ["BIGINT", "STRING", "DOUBLE"]);
        let borrowed: [&dyn ToSql; 2] = [&true, &2_i8];
        assert_eq!(sql(borrowed[0]), some("BOOLEAN", "true"));
        assert_eq!(sql(borrowed[1]), some("TINYINT", "2"));
    }

    #[test]
    fn debug_shows_names_and_types_never_values() {
        let p = params![password => "hunter2", n => 5_i32];
        let text = format!("{p:?}");
        assert!(
            text.contains(":password STRING") && text.contains(":n INT"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn floats_read_back_exactly() {
        for v in [0.1_f64, 1.0 / 3.0, f64::MIN_POSITIVE, f64::MAX, -2.5e-300] {
            let text = sql(v).1.unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn non_utf8_bytes_are_an_error_naming_the_offset() {
        let e = [0x61_u8, 0xff].as_slice().to_sql().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("byte 1"), "{e}");
    }

    #[test]
    fn none_is_a_null_of_the_inner_type() {
        assert_eq!(sql(None::<i64>), ("BIGINT".to_string(), None));
        assert_eq!(sql(None::<String>), ("STRING".to_string(), None));
        assert_eq!(sql(None::<NaiveDate>), ("DATE".to_string(), None));
        assert_eq!(sql(Some(5_i32)), some("INT", "5"));
        assert_eq!(sql(SqlValue::void()), ("VOID".to_string(), None));
    }

    #[test]
    fn dates_and_timestamps_are_exact() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(sql(date), some("DATE", "2024-02-29"));
        assert_eq!(
            sql(NaiveDate::from_ymd_opt(-44, 3, 15).unwrap()),
            some("DATE", "-0044-03-15")
        );
        let ntz = date.and_hms_nano_opt(23, 59, 58, 123_456_000).unwrap();
        assert_eq!(
            sql(ntz),
            some("TIMESTAMP_NTZ", "2024-02-29 23:59:58.123456")
        );
        assert_eq!(
            sql(date.and_hms_opt(0, 0, 0).unwrap()),
            some("TIMESTAMP_NTZ", "2024-02-29 00:00:00")
        );
        let offset = FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap();
        let tz = offset.from_local_datetime(&ntz).unwrap();
        assert_eq!(
            sql(tz),
            some("TIMESTAMP", "2024-02-29T23:59:58.123456-05:30")
        );
        let utc = Utc.timestamp_opt(1_700_000_000, 1).unwrap();
        assert_eq!(
            sql(utc),
            some("TIMESTAMP", "2023-11-14T22:13:20.000000001+00:00")
        );
        let system = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(
            sql(system),
            some("TIMESTAMP", "2023-11-14T22:13:20.123456+00:00")
        );
        let before = UNIX_EPOCH - std::time::Duration::from_micros(1_500_000);
        assert_eq!(
            sql(before),
            some("TIMESTAMP", "1969-12-31T23:59:58.5+00:00")
        );
    }

    #[test]
    fn decimals_keep_every_digit_and_their_scale() {
        let d: Decimal = "12345678901234567890123456789.012345678".parse().unwrap();
        assert_eq!(
            sql(d),
            some("DECIMAL(38,9)", "12345678901234567890123456789.012345678")
        );
        let max: Decimal = "-99999999999999999999999999999999999999".parse().unwrap();
        assert_eq!(
            sql(max),
            some("DECIMAL(38,0)", "-99999999999999999999999999999999999999")
        );
        assert_eq!(
            sql("0.05".parse::<Decimal>().unwrap()),
            some("DECIMAL(2,2)", "0.05")
        );
        assert_eq!(
            sql("+1.50".parse::<Decimal>().unwrap()),
            some("DECIMAL(3,2)", "1.50")
        );
        assert_eq!(
            sql(Decimal::new(-5, 3).unwrap()),
            some("DECIMAL(3,3)", "-0.005")
        );
        assert_eq!(sql(Decimal::new(0, 0).unwrap()), some("DECIMAL(1,0)", "0"));
        assert_eq!(
            sql(".5".parse::<Decimal>().unwrap()),
            some("DECIMAL(1,1)", "0.5")
        );
        assert_eq!(sql(None::<Decimal>), ("DECIMAL(38,18)".to_string(), None));
    }

    #[test]
    fn malformed_or_oversized_decimals_are_errors() {
        for bad in ["", "-", ".", "1.2.3", "1e5", "12a", " 1", "NaN"] {
            let e = bad.parse::<Decimal>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad:?}");
        }
        let e = "123456789012345678901234567890123456789"
            .parse::<Decimal>()
            .unwrap_err();
        assert!(e.message().contains("at most 38 digits"), "{e}");
        assert!(Decimal::new(1, 39).is_err());
        assert!(Decimal::new(i128::MAX, 0).is_err());
    }

    #[test]
    fn named_parameters_go_by_name_and_positional_ones_by_ordinal() {
        let named = params![id => 42_i64, note => None::<String>]
            .to_thrift()
            .unwrap()
            .unwrap();
        assert_eq!(named[0].name.as_deref(), Some("id"));
        assert_eq!(named[0].ordinal, None);
        assert_eq!(named[0].type_.as_deref(), Some("BIGINT"));
        assert_eq!(
            named[0].value,
            Some(TSparkParameterValue::StringValue("42".to_string()))
        );
        assert_eq!(named[1].type_.as_deref(), Some("STRING"));
        assert_eq!(named[1].value, None);
        let positional = params![1_i32, "x"].to_thrift().unwrap().unwrap();
        assert_eq!(
            positional.iter().map(|p| p.ordinal).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert!(positional.iter().all(|p| p.name.is_none()));
        assert!(params![].to_thrift().unwrap().is_none());
        let literal = params!["order_date" => "2024-01-31"]
            .to_thrift()
            .unwrap()
            .unwrap();
        assert_eq!(literal[0].name.as_deref(), Some("order_date"));
    }

    #[test]
    fn mixing_too_many_bad_names_and_bad_values_are_errors() {
        let mixed = Params::new().named("a", 1_i32).positional(2_i32);
        let e = mixed.to_thrift().unwrap_err();
        assert!(e.message().contains("cannot be mixed"), "{e}");
        let mut many = Params::new();
        for i in 0..=MAX_PARAMETERS {
            many = many.positional(i as i64);
        }
        assert!(many
            .to_thrift()
            .unwrap_err()
            .message()
            .contains("at most 256"));
        let twice = params![a => 1_i32, A => 2_i32].to_thrift().unwrap_err();
        assert!(twice.message().contains("given twice"), "{twice}");
        for name in [":id", "1st", "", "a-b"] {
            let e = Params::new().named(name, 1_i32).to_thrift().unwrap_err();
            assert!(e.message().contains("not an identifier"), "{name}: {e}");
        }
        let e = Params::new()
            .positional(1_i32)
            .positional(vec![0xc3_u8, 0x28])
            .to_thrift()
            .unwrap_err();
        assert!(e.message().starts_with("parameter 2: "), "{e}");
    }
}
