//! One column of a batch, read through an accessor picked once per batch from its Arrow type:
//! what the serde deserializer and [`Row::get`](super::Row::get) read values through, and the
//! text forms of decimals, dates and timestamps.

use std::cell::RefCell;

use arrow_array::types::Float16Type;
use arrow_array::{
    Array, ArrowPrimitiveType, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    FixedSizeListArray, LargeBinaryArray, LargeListArray, LargeStringArray, ListArray, MapArray,
    PrimitiveArray, StringArray, StringViewArray, StructArray,
};
use arrow_buffer::{i256, NullBuffer};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

/// A column (or a nested child array) with its typed accessor.
pub(crate) struct Col<'a> {
    pub(crate) data_type: &'a DataType,
    nulls: Option<&'a NullBuffer>,
    pub(crate) kind: Kind<'a>,
}

/// The typed view of a column's values.
pub(crate) enum Kind<'a> {
    /// Arrow `Null`: every value is NULL.
    Null,
    Bool(&'a BooleanArray),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    F16(&'a [<Float16Type as ArrowPrimitiveType>::Native]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Binary(&'a BinaryArray),
    LargeBinary(&'a LargeBinaryArray),
    BinaryView(&'a BinaryViewArray),
    FixedBinary(&'a FixedSizeBinaryArray),
    Decimal128(&'a [i128], i8),
    Decimal256(&'a [i256], i8),
    /// Days since the epoch.
    Date32(&'a [i32]),
    /// Milliseconds since the epoch.
    Date64(&'a [i64]),
    /// Values since the epoch in `unit`; `zoned`: the type has a time zone (an instant).
    Timestamp {
        values: &'a [i64],
        unit: TimeUnit,
        zoned: bool,
    },
    List(&'a [i32], Box<Col<'a>>),
    LargeList(&'a [i64], Box<Col<'a>>),
    FixedList(usize, Box<Col<'a>>),
    /// Offsets, keys, values.
    Map(&'a [i32], Box<Col<'a>>, Box<Col<'a>>),
    Struct(Fields<'a>),
    /// A type rows do not read (dictionaries, intervals, unions...): an error when read.
    Unsupported,
}

/// The named children of a struct (or the columns of a batch), with the positions of the
/// fields of the last Rust struct read from them.
pub(crate) struct Fields<'a> {
    pub(crate) names: Vec<&'a str>,
    pub(crate) children: Vec<Col<'a>>,
    cache: RefCell<Option<FieldMap>>,
}

/// Which child each field of a Rust struct reads, for the `fields` list serde gave.
struct FieldMap {
    fields: *const &'static str,
    len: usize,
    map: std::rc::Rc<[(&'static str, usize)]>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(names: Vec<&'a str>, children: Vec<Col<'a>>) -> Self {
        Fields {
            names,
            children,
            cache: RefCell::new(None),
        }
    }

    /// The `(field, child index)` pairs of the struct fields that have a child of that name
    /// (exact, else ASCII case-insensitive), in the order of `fields`. Worked out once for a
    /// `fields` list and reused for every row.
    pub(crate) fn map_fields(
        &self,
        fields: &'static [&'static str],
    ) -> std::rc::Rc<[(&'static str, usize)]> {
        if let Some(cached) = self.cache.borrow().as_ref() {
            if cached.fields == fields.as_ptr() && cached.len == fields.len() {
                return cached.map.clone();
            }
        }
        let map: std::rc::Rc<[(&'static str, usize)]> = fields
            .iter()
            .filter_map(|field| self.position(field).map(|i| (*field, i)))
            .collect();
        *self.cache.borrow_mut() = Some(FieldMap {
            fields: fields.as_ptr(),
            len: fields.len(),
            map: map.clone(),
        });
        map
    }

    /// The child named `name`: the first with exactly that name, else the first whose name
    /// matches ignoring ASCII case.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        find_name(self.names.iter().copied(), name)
    }
}

/// The position of `name` among `names`: the first exactly equal, else the first equal
/// ignoring ASCII case (struct fields to columns, `Row::get` by name).
pub(crate) fn find_name<'n>(
    names: impl Iterator<Item = &'n str> + Clone,
    name: &str,
) -> Option<usize> {
    names
        .clone()
        .position(|n| n == name)
        .or_else(|| names.into_iter().position(|n| n.eq_ignore_ascii_case(name)))
}

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array) -> Option<&[T::Native]> {
    array
        .as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .map(|a| &**a.values())
}

impl<'a> Col<'a> {
    /// The accessor of `array`, picked from its Arrow type.
    pub(crate) fn new(array: &'a dyn Array) -> Col<'a> {
        use arrow_array::types::*;
        let data_type = array.data_type();
        let any = array.as_any();
        let kind = (|| {
            Some(match data_type {
                DataType::Null => Kind::Null,
                DataType::Boolean => Kind::Bool(any.downcast_ref()?),
                DataType::Int8 => Kind::I8(primitive::<Int8Type>(array)?),
                DataType::Int16 => Kind::I16(primitive::<Int16Type>(array)?),
                DataType::Int32 => Kind::I32(primitive::<Int32Type>(array)?),
                DataType::Int64 => Kind::I64(primitive::<Int64Type>(array)?),
                DataType::UInt8 => Kind::U8(primitive::<UInt8Type>(array)?),
                DataType::UInt16 => Kind::U16(primitive::<UInt16Type>(array)?),
                DataType::UInt32 => Kind::U32(primitive::<UInt32Type>(array)?),
                DataType::UInt64 => Kind::U64(primitive::<UInt64Type>(array)?),
                DataType::Float16 => Kind::F16(primitive::<Float16Type>(array)?),
                DataType::Float32 => Kind::F32(primitive::<Float32Type>(array)?),
                DataType::Float64 => Kind::F64(primitive::<Float64Type>(array)?),
                DataType::Utf8 => Kind::Utf8(any.downcast_ref()?),
                DataType::LargeUtf8 => Kind::LargeUtf8(any.downcast_ref()?),
                DataType::Utf8View => Kind::Utf8View(any.downcast_ref()?),
                DataType::Binary => Kind::Binary(any.downcast_ref()?),
                DataType::LargeBinary => Kind::LargeBinary(any.downcast_ref()?),
                DataType::BinaryView => Kind::BinaryView(any.downcast_ref()?),
                DataType::FixedSizeBinary(_) => Kind::FixedBinary(any.downcast_ref()?),
                DataType::Decimal128(_, scale) => {
                    Kind::Decimal128(primitive::<Decimal128Type>(array)?, *scale)
                }
                DataType::Decimal256(_, scale) => {
                    Kind::Decimal256(primitive::<Decimal256Type>(array)?, *scale)
                }
                DataType::Date32 => Kind::Date32(primitive::<Date32Type>(array)?),
                DataType::Date64 => Kind::Date64(primitive::<Date64Type>(array)?),
                DataType::Timestamp(unit, zone) => Kind::Timestamp {
                    values: match unit {
                        TimeUnit::Second => primitive::<TimestampSecondType>(array)?,
                        TimeUnit::Millisecond => primitive::<TimestampMillisecondType>(array)?,
                        TimeUnit::Microsecond => primitive::<TimestampMicrosecondType>(array)?,
                        TimeUnit::Nanosecond => primitive::<TimestampNanosecondType>(array)?,
                    },
                    unit: *unit,
                    zoned: zone.is_some(),
                },
                DataType::List(_) => {
                    let list: &ListArray = any.downcast_ref()?;
                    Kind::List(list.value_offsets(), Box::new(Col::new(list.values())))
                }
                DataType::LargeList(_) => {
                    let list: &LargeListArray = any.downcast_ref()?;
                    Kind::LargeList(list.value_offsets(), Box::new(Col::new(list.values())))
                }
                DataType::FixedSizeList(_, size) => {
                    let list: &FixedSizeListArray = any.downcast_ref()?;
                    Kind::FixedList(
                        usize::try_from(*size).ok()?,
                        Box::new(Col::new(list.values())),
                    )
                }
                DataType::Map(_, _) => {
                    let map: &MapArray = any.downcast_ref()?;
                    Kind::Map(
                        map.value_offsets(),
                        Box::new(Col::new(map.keys())),
                        Box::new(Col::new(map.values())),
                    )
                }
                DataType::Struct(fields) => {
                    let s: &StructArray = any.downcast_ref()?;
                    Kind::Struct(Fields::new(
                        fields.iter().map(|f| f.name().as_str()).collect(),
                        s.columns().iter().map(|c| Col::new(c.as_ref())).collect(),
                    ))
                }
                _ => Kind::Unsupported,
            })
        })()
        .unwrap_or(Kind::Unsupported);
        Col {
            data_type,
            nulls: array.nulls(),
            kind,
        }
    }

    /// The accessor of a batch's columns as one struct without NULLs.
    pub(crate) fn root(data_type: &'a DataType, fields: Fields<'a>) -> Col<'a> {
        Col {
            data_type,
            nulls: None,
            kind: Kind::Struct(fields),
        }
    }

    /// Whether the value at `row` is NULL.
    #[inline]
    pub(crate) fn is_null(&self, row: usize) -> bool {
        matches!(self.kind, Kind::Null) || self.nulls.is_some_and(|n| n.is_null(row))
    }

    /// The value at `row` as an integer, for integer and decimal types (a decimal only when it
    /// has no fraction); `None` for other types.
    pub(crate) fn integer(&self, row: usize) -> Option<Result<i128, String>> {
        Some(Ok(match &self.kind {
            Kind::I8(v) => v[row].into(),
            Kind::I16(v) => v[row].into(),
            Kind::I32(v) => v[row].into(),
            Kind::I64(v) => v[row].into(),
            Kind::U8(v) => v[row].into(),
            Kind::U16(v) => v[row].into(),
            Kind::U32(v) => v[row].into(),
            Kind::U64(v) => v[row].into(),
            Kind::Decimal128(v, scale) => {
                let unscaled = v[row];
                return Some(if *scale <= 0 {
                    10i128
                        .checked_pow(u32::from(scale.unsigned_abs()))
                        .and_then(|f| unscaled.checked_mul(f))
                        .ok_or_else(|| "the decimal value is out of range".to_string())
                } else {
                    let f = 10i128.checked_pow(u32::from(scale.unsigned_abs()));
                    match f {
                        Some(f) if unscaled % f == 0 => Ok(unscaled / f),
                        _ => Err(format!(
                            "the decimal {} has a fraction",
                            crate::params::decimal_text(&unscaled.to_string(), *scale)
                        )),
                    }
                });
            }
            _ => return None,
        }))
    }

    /// The value at `row` as a float, for float, integer and decimal types.
    pub(crate) fn float(&self, row: usize) -> Option<f64> {
        Some(match &self.kind {
            Kind::F16(v) => v[row].to_f64(),
            Kind::F32(v) => f64::from(v[row]),
            Kind::F64(v) => v[row],
            Kind::Decimal128(..) | Kind::Decimal256(..) => self.text(row)?.parse().ok()?,
            _ => self.integer(row)?.ok()? as f64,
        })
    }

    /// The value at `row` of a string column.
    #[inline]
    pub(crate) fn str(&self, row: usize) -> Option<&'a str> {
        Some(match &self.kind {
            Kind::Utf8(a) => a.value(row),
            Kind::LargeUtf8(a) => a.value(row),
            Kind::Utf8View(a) => a.value(row),
            _ => return None,
        })
    }

    /// The value at `row` of a binary column.
    pub(crate) fn bytes(&self, row: usize) -> Option<&'a [u8]> {
        Some(match &self.kind {
            Kind::Binary(a) => a.value(row),
            Kind::LargeBinary(a) => a.value(row),
            Kind::BinaryView(a) => a.value(row),
            Kind::FixedBinary(a) => a.value(row),
            _ => return None,
        })
    }

    /// The date at `row` of a date column (`Err` when out of chrono's range).
    pub(crate) fn date(&self, row: usize) -> Option<Result<NaiveDate, String>> {
        let days = match &self.kind {
            Kind::Date32(v) => i64::from(v[row]),
            Kind::Date64(v) => v[row].div_euclid(86_400_000),
            _ => return None,
        };
        Some(
            i32::try_from(days)
                .ok()
                .and_then(|d| d.checked_add(UNIX_EPOCH_DAY_FROM_CE))
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| format!("the date {days} days from 1970-01-01 is out of range")),
        )
    }

    /// The instant at `row` of a timestamp column, and whether the type has a time zone
    /// (`Err` when out of chrono's range).
    pub(crate) fn timestamp(&self, row: usize) -> Option<(Result<DateTime<Utc>, String>, bool)> {
        let Kind::Timestamp {
            values,
            unit,
            zoned,
        } = &self.kind
        else {
            return None;
        };
        let v = values[row];
        let instant = match unit {
            TimeUnit::Second => DateTime::from_timestamp(v, 0),
            TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
            TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
            TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
        };
        Some((
            instant.ok_or_else(|| format!("the timestamp {v} ({unit:?}) is out of range")),
            *zoned,
        ))
    }

    /// The text form of the value at `row` of a decimal, date or timestamp column: decimals
    /// exactly (`-12.50`), dates as `YYYY-MM-DD`, timestamps as RFC 3339 (`2024-05-01T12:00:00.5`,
    /// with `Z` when the type has a time zone: the UTC instant, whichever the zone). `None` for
    /// other types or a date or timestamp out of range.
    pub(crate) fn text(&self, row: usize) -> Option<String> {
        match &self.kind {
            Kind::Decimal128(v, scale) => {
                Some(crate::params::decimal_text(&v[row].to_string(), *scale))
            }
            Kind::Decimal256(v, scale) => {
                Some(crate::params::decimal_text(&v[row].to_string(), *scale))
            }
            Kind::Date32(_) | Kind::Date64(_) => {
                let mut buf = TextBuf::new();
                Some(buf.date(self.date(row)?.ok()?).to_string())
            }
            Kind::Timestamp { .. } => {
                let (instant, zoned) = self.timestamp(row)?;
                let mut buf = TextBuf::new();
                Some(buf.datetime(instant.ok()?.naive_utc(), zoned).to_string())
            }
            _ => None,
        }
    }
}

/// `NaiveDate::from_num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAY_FROM_CE: i32 = 719_163;

/// A stack buffer for the text of a date or timestamp, written without the formatting machinery
/// (the hot path of timestamps read through serde).
pub(crate) struct TextBuf {
    buf: [u8; 40],
    len: usize,
    fallback: String,
}

impl TextBuf {
    pub(crate) fn new() -> Self {
        TextBuf {
            buf: [0; 40],
            len: 0,
            fallback: String::new(),
        }
    }

    fn push_digits(&mut self, value: u32, width: usize) {
        let mut v = value;
        for i in (0..width).rev() {
            self.buf[self.len + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.len += width;
    }

    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        if !self.fallback.is_empty() {
            return &self.fallback;
        }
        // Only ASCII digits and punctuation were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// Starts the text over with `YYYY-MM-DD`; false (nothing written) outside years 0..=9999.
    fn start_with_date(&mut self, date: NaiveDate) -> bool {
        match u32::try_from(date.year()) {
            Ok(year) if year <= 9999 => {
                self.len = 0;
                self.fallback.clear();
                self.push_digits(year, 4);
                self.push(b'-');
                self.push_digits(date.month(), 2);
                self.push(b'-');
                self.push_digits(date.day(), 2);
                true
            }
            _ => false,
        }
    }

    /// `YYYY-MM-DD` (chrono's signed form outside years 0..=9999).
    pub(crate) fn date(&mut self, date: NaiveDate) -> &str {
        if !self.start_with_date(date) {
            self.fallback = format!("{date:?}");
        }
        self.as_str()
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]`, `Z` appended when `zoned`: the form chrono's
    /// `FromStr` (and so its serde support) reads back.
    pub(crate) fn datetime(&mut self, at: NaiveDateTime, zoned: bool) -> &str {
        match self.start_with_date(at.date()) {
            true => {
                self.push(b'T');
                self.push_digits(at.hour(), 2);
                self.push(b':');
                self.push_digits(at.minute(), 2);
                self.push(b':');
                self.push_digits(at.second(), 2);
                let nanos = at.nanosecond();
                if nanos != 0 {
                    self.push(b'.');
                    if nanos.is_multiple_of(1_000_000) {
                        self.push_digits(nanos / 1_000_000, 3);
                    } else if nanos.is_multiple_of(1_000) {
                        self.push_digits(nanos / 1_000, 6);
                    } else {
                        self.push_digits(nanos, 9);
                    }
                }
                if zoned {
                    self.push(b'Z');
                }
            }
            false => {
                self.fallback = format!("{at:?}");
                if zoned {
                    self.fallback.push('Z');
                }
            }
        }
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_text_is_what_chrono_reads() {
        let mut buf = TextBuf::new();
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        assert_eq!(buf.datetime(at, true), "2023-11-14T22:13:20.123456Z");
        let parsed: DateTime<Utc> = buf.datetime(at, true).parse().unwrap();
        assert_eq!(parsed.naive_utc(), at);
        let mut buf = TextBuf::new();
        let naive: NaiveDateTime = buf.datetime(at, false).parse().unwrap();
        assert_eq!(naive, at);
        let mut buf = TextBuf::new();
        let far = NaiveDate::from_ymd_opt(12345, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        let text = buf.datetime(far, false).to_string();
        assert_eq!(text.parse::<NaiveDateTime>().unwrap(), far);
        let mut buf = TextBuf::new();
        assert_eq!(
            buf.date(NaiveDate::from_ymd_opt(1, 1, 1).unwrap()),
            "0001-01-01"
        );
    }
}
