//! The serde [`Deserializer`](serde::Deserializer) over the values of a batch: one for a value
//! ([`ValueDe`]) and one for a whole row ([`RowDe`], the batch's columns as the fields of a struct).

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, U8Deserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use arrow_schema::TimeUnit;

use super::column::{Col, Fields, Kind, TextBuf};

/// A deserialization failure inside one row, with the batch column it happened in when known.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) message: String,
    /// The batch column whose value failed; `None` for failures of the row as a whole (a
    /// missing field).
    pub(crate) column: Option<usize>,
}

impl DeError {
    fn new(message: String) -> Self {
        DeError {
            message,
            column: None,
        }
    }

    /// The same error, located in batch column `column` unless it already is.
    fn in_column(mut self, column: usize) -> Self {
        self.column.get_or_insert(column);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(format!(
            "missing field `{field}`: no column (or struct field) has that name"
        ))
    }
}

type Result<T> = std::result::Result<T, DeError>;

/// "Arrow X cannot be deserialized into Y".
fn mismatch(col: &Col<'_>, wanted: &str) -> DeError {
    DeError::new(format!(
        "Arrow type {} cannot be deserialized into {wanted}",
        col.data_type
    ))
}

/// The value at `row` of `col`.
pub(crate) struct ValueDe<'c, 'a> {
    pub(crate) col: &'c Col<'a>,
    pub(crate) row: usize,
}

impl<'c, 'a> ValueDe<'c, 'a> {
    /// A NULL met where `wanted` (not an `Option`) was asked for.
    fn null(&self, wanted: &str) -> DeError {
        DeError::new(format!(
            "a NULL of Arrow type {} cannot be deserialized into {wanted} (use an Option)",
            self.col.data_type
        ))
    }

    /// The integer value, checked to fit `T`.
    #[inline]
    fn int<T: TryFrom<i128>>(&self, wanted: &str) -> Result<T> {
        if self.col.is_null(self.row) {
            return Err(self.null(wanted));
        }
        match self.col.integer(self.row) {
            Some(Ok(v)) => T::try_from(v).map_err(|_| {
                DeError::new(format!(
                    "the {} value {v} is out of range for {wanted}",
                    self.col.data_type
                ))
            }),
            Some(Err(e)) => Err(DeError::new(format!("{e}: it cannot be read as {wanted}"))),
            None => Err(mismatch(self.col, wanted)),
        }
    }

    fn float(&self, wanted: &str) -> Result<f64> {
        if self.col.is_null(self.row) {
            return Err(self.null(wanted));
        }
        self.col
            .float(self.row)
            .ok_or_else(|| mismatch(self.col, wanted))
    }

    /// The children `start..end` of a list's child column, as a sequence.
    fn list<V: Visitor<'a>>(
        &self,
        visitor: V,
        child: &'c Col<'a>,
        start: Option<usize>,
        end: Option<usize>,
    ) -> Result<V::Value> {
        match (start, end) {
            (Some(start), Some(end)) if start <= end => visitor.visit_seq(ListAccess {
                col: child,
                next: start,
                end,
            }),
            _ => Err(DeError::new(format!(
                "the offsets of a {} value are out of range",
                self.col.data_type
            ))),
        }
    }

    /// A string value read as JSON: column-based results carry ARRAY, MAP and STRUCT values
    /// as JSON text.
    fn json<V: Visitor<'a>>(
        &self,
        text: &'a str,
        visitor: V,
        read: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
            V,
        ) -> serde_json::Result<V::Value>,
    ) -> Result<V::Value> {
        let mut json = serde_json::Deserializer::from_str(text);
        read(&mut json, visitor)
            .and_then(|v| json.end().map(|_| v))
            .map_err(|e| {
                DeError::new(format!(
                    "the JSON text of a {} value: {e}",
                    self.col.data_type
                ))
            })
    }
}

impl<'c, 'a> de::Deserializer<'a> for ValueDe<'c, 'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let (col, row) = (self.col, self.row);
        if col.is_null(row) {
            return visitor.visit_none();
        }
        match &col.kind {
            Kind::Null => visitor.visit_none(),
            Kind::Bool(a) => visitor.visit_bool(a.value(row)),
            Kind::I8(v) => visitor.visit_i8(v[row]),
            Kind::I16(v) => visitor.visit_i16(v[row]),
            Kind::I32(v) => visitor.visit_i32(v[row]),
            Kind::I64(v) => visitor.visit_i64(v[row]),
            Kind::U8(v) => visitor.visit_u8(v[row]),
            Kind::U16(v) => visitor.visit_u16(v[row]),
            Kind::U32(v) => visitor.visit_u32(v[row]),
            Kind::U64(v) => visitor.visit_u64(v[row]),
            Kind::F16(v) => visitor.visit_f32(v[row].to_f32()),
            Kind::F32(v) => visitor.visit_f32(v[row]),
            Kind::F64(v) => visitor.visit_f64(v[row]),
            Kind::Utf8(_) | Kind::LargeUtf8(_) | Kind::Utf8View(_) => self.deserialize_str(visitor),
            // A sequence of bytes, as serde's own formats give a `Vec<u8>` to self-describing
            // readers (`serde_json::Value`: an array of numbers).
            Kind::Binary(_) | Kind::LargeBinary(_) | Kind::BinaryView(_) | Kind::FixedBinary(_) => {
                self.deserialize_seq(visitor)
            }
            Kind::Decimal128(..)
            | Kind::Decimal256(..)
            | Kind::Date32(_)
            | Kind::Date64(_)
            | Kind::Timestamp { .. } => self.deserialize_str(visitor),
            Kind::List(..) | Kind::LargeList(..) | Kind::FixedList(..) => {
                self.deserialize_seq(visitor)
            }
            Kind::Map(..) | Kind::Struct(_) => self.deserialize_map(visitor),
            Kind::Unsupported => Err(mismatch(col, "any value (the type is not supported)")),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            return Err(self.null("bool"));
        }
        match &self.col.kind {
            Kind::Bool(a) => visitor.visit_bool(a.value(self.row)),
            _ => Err(mismatch(self.col, "bool")),
        }
    }

    fn deserialize_i8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(self.int("i8")?)
    }
    fn deserialize_i16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i16(self.int("i16")?)
    }
    fn deserialize_i32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i32(self.int("i32")?)
    }
    /// Integers; a timestamp as microseconds since the epoch (what
    /// `chrono::serde::ts_microseconds` reads into a `DateTime<Utc>` without parsing text).
    #[inline]
    fn deserialize_i64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let null = self.col.is_null(self.row);
        match (&self.col.kind, null) {
            (Kind::I64(v), false) => visitor.visit_i64(v[self.row]),
            (Kind::Timestamp { values, unit, .. }, false) => {
                let v = values[self.row];
                let micros = match unit {
                    TimeUnit::Second => v.checked_mul(1_000_000),
                    TimeUnit::Millisecond => v.checked_mul(1_000),
                    TimeUnit::Microsecond => Some(v),
                    TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
                };
                match micros {
                    Some(micros) => visitor.visit_i64(micros),
                    None => Err(DeError::new(format!(
                        "the timestamp {v} ({unit:?}) is out of range for i64 microseconds"
                    ))),
                }
            }
            _ => visitor.visit_i64(self.int("i64")?),
        }
    }
    fn deserialize_i128<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i128(self.int("i128")?)
    }
    fn deserialize_u8<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.int("u8")?)
    }
    fn deserialize_u16<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u16(self.int("u16")?)
    }
    fn deserialize_u32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.int("u32")?)
    }
    fn deserialize_u64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.int("u64")?)
    }
    fn deserialize_u128<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u128(self.int("u128")?)
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if let (Kind::F32(v), false) = (&self.col.kind, self.col.is_null(self.row)) {
            return visitor.visit_f32(v[self.row]);
        }
        visitor.visit_f32(self.float("f32")? as f32)
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if let (Kind::F64(v), false) = (&self.col.kind, self.col.is_null(self.row)) {
            return visitor.visit_f64(v[self.row]);
        }
        visitor.visit_f64(self.float("f64")?)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            return Err(self.null("char"));
        }
        let text = self
            .col
            .str(self.row)
            .ok_or_else(|| mismatch(self.col, "char"))?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(DeError::new(format!(
                "the string {:?} is not one character",
                text.chars().take(32).collect::<String>()
            ))),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let (col, row) = (self.col, self.row);
        if col.is_null(row) {
            return Err(self.null("a string"));
        }
        if let Some(text) = col.str(row) {
            return visitor.visit_borrowed_str(text);
        }
        match &col.kind {
            Kind::Timestamp { .. } => {
                let (instant, zoned) = col
                    .timestamp(row)
                    .ok_or_else(|| mismatch(col, "a string"))?;
                let instant = instant.map_err(DeError::new)?;
                let mut buf = TextBuf::new();
                visitor.visit_str(buf.datetime(instant.naive_utc(), zoned))
            }
            Kind::Date32(_) | Kind::Date64(_) => {
                let date = col.date(row).ok_or_else(|| mismatch(col, "a string"))?;
                let mut buf = TextBuf::new();
                visitor.visit_str(buf.date(date.map_err(DeError::new)?))
            }
            Kind::Decimal128(..) | Kind::Decimal256(..) => match col.text(row) {
                Some(text) => visitor.visit_string(text),
                None => Err(mismatch(col, "a string")),
            },
            _ => Err(mismatch(col, "a string")),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            return Err(self.null("bytes"));
        }
        if let Some(bytes) = self.col.bytes(self.row) {
            return visitor.visit_borrowed_bytes(bytes);
        }
        match self.col.str(self.row) {
            Some(text) => visitor.visit_borrowed_bytes(text.as_bytes()),
            None => Err(mismatch(self.col, "bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            visitor.visit_unit()
        } else {
            Err(mismatch(self.col, "() (only NULL is)"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let (col, row) = (self.col, self.row);
        if col.is_null(row) {
            return Err(self.null("a sequence"));
        }
        match &col.kind {
            Kind::List(offsets, child) => {
                let at = |i: usize| offsets.get(i).and_then(|o| usize::try_from(*o).ok());
                self.list(visitor, child, at(row), at(row + 1))
            }
            Kind::LargeList(offsets, child) => {
                let at = |i: usize| offsets.get(i).and_then(|o| usize::try_from(*o).ok());
                self.list(visitor, child, at(row), at(row + 1))
            }
            Kind::FixedList(size, child) => {
                let start = row.checked_mul(*size);
                let end = start.and_then(|s| s.checked_add(*size));
                self.list(visitor, child, start, end)
            }
            Kind::Struct(fields) => visitor.visit_seq(TupleAccess {
                fields,
                row,
                next: 0,
                root: false,
            }),
            _ => {
                if let Some(bytes) = col.bytes(row) {
                    return visitor.visit_seq(BytesAccess { bytes, next: 0 });
                }
                match col.str(row) {
                    Some(text) => self.json(text, visitor, |json, v| {
                        de::Deserializer::deserialize_seq(json, v)
                    }),
                    None => Err(mismatch(col, "a sequence")),
                }
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let (col, row) = (self.col, self.row);
        if col.is_null(row) {
            return Err(self.null("a map"));
        }
        match &col.kind {
            Kind::Map(offsets, keys, values) => {
                let at = |i: usize| offsets.get(i).and_then(|o| usize::try_from(*o).ok());
                match (at(row), at(row + 1)) {
                    (Some(start), Some(end)) if start <= end => visitor.visit_map(EntryAccess {
                        keys,
                        values,
                        next: start,
                        end,
                    }),
                    _ => Err(DeError::new(format!(
                        "the offsets of a {} value are out of range",
                        col.data_type
                    ))),
                }
            }
            Kind::Struct(fields) => visitor.visit_map(StructAccess {
                fields,
                row,
                keys: AllFields(fields),
                next: 0,
                root: false,
            }),
            _ => match col.str(row) {
                Some(text) => self.json(text, visitor, |json, v| {
                    de::Deserializer::deserialize_map(json, v)
                }),
                None => Err(mismatch(col, "a map")),
            },
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let (col, row) = (self.col, self.row);
        if col.is_null(row) {
            return Err(self.null(&format!("struct {name}")));
        }
        match &col.kind {
            Kind::Struct(children) => struct_access(children, row, fields, visitor, false),
            Kind::Map(..) => self.deserialize_map(visitor),
            _ => match col.str(row) {
                Some(text) => self.json(text, visitor, |json, v| {
                    de::Deserializer::deserialize_struct(json, name, fields, v)
                }),
                None => Err(mismatch(col, &format!("struct {name}"))),
            },
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.col.is_null(self.row) {
            return Err(self.null(&format!("enum {name}")));
        }
        match self.col.str(self.row) {
            Some(text) => visitor.visit_enum(BorrowedStrDeserializer::<DeError>::new(text)),
            None => Err(mismatch(self.col, &format!("enum {name} (from a string)"))),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

/// `fields` of a Rust struct read from the children of `children` at `row`; `root`: the
/// children are a batch's columns (errors are located in them).
fn struct_access<'a, V: Visitor<'a>>(
    children: &Fields<'a>,
    row: usize,
    fields: &'static [&'static str],
    visitor: V,
    root: bool,
) -> Result<V::Value> {
    let map = children.map_fields(fields);
    visitor.visit_map(StructAccess {
        fields: children,
        row,
        keys: MappedFields(&map),
        next: 0,
        root,
    })
}

/// The keys a [`StructAccess`] hands out.
trait StructKeys<'a> {
    /// The key and the child index of entry `i`, `None` past the end.
    fn entry(&self, i: usize) -> Option<(&'a str, usize)>;
    fn len(&self) -> usize;
}

/// Every child, under its own name.
struct AllFields<'f, 'a>(&'f Fields<'a>);

impl<'a> StructKeys<'a> for AllFields<'_, 'a> {
    fn entry(&self, i: usize) -> Option<(&'a str, usize)> {
        self.0.names.get(i).map(|n| (*n, i))
    }
    fn len(&self) -> usize {
        self.0.names.len()
    }
}

/// The fields of a Rust struct that have a child, under the struct's names.
struct MappedFields<'m>(&'m [(&'static str, usize)]);

impl<'a> StructKeys<'a> for MappedFields<'_> {
    #[inline]
    fn entry(&self, i: usize) -> Option<(&'a str, usize)> {
        self.0.get(i).copied()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The children of a struct (or a row) as a map.
struct StructAccess<'c, 'a, K> {
    fields: &'c Fields<'a>,
    row: usize,
    keys: K,
    next: usize,
    root: bool,
}

impl<'c, 'a, K: StructKeys<'a>> de::MapAccess<'a> for StructAccess<'c, 'a, K> {
    type Error = DeError;

    #[inline]
    fn next_key_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        match self.keys.entry(self.next) {
            Some((key, _)) => seed
                .deserialize(BorrowedStrDeserializer::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    #[inline]
    fn next_value_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<S::Value> {
        let entry = self.keys.entry(self.next);
        self.next += 1;
        let (_, child) =
            entry.ok_or_else(|| DeError::new("a value was read past the last field".into()))?;
        let col = self
            .fields
            .children
            .get(child)
            .ok_or_else(|| DeError::new("a field has no column".into()))?;
        let value = seed.deserialize(ValueDe { col, row: self.row });
        if self.root {
            value.map_err(|e| e.in_column(child))
        } else {
            value
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.keys.len().saturating_sub(self.next))
    }
}

/// The children of a struct (or a row) as a sequence, by position.
struct TupleAccess<'c, 'a> {
    fields: &'c Fields<'a>,
    row: usize,
    next: usize,
    root: bool,
}

impl<'c, 'a> de::SeqAccess<'a> for TupleAccess<'c, 'a> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let i = self.next;
        let Some(col) = self.fields.children.get(i) else {
            return Ok(None);
        };
        self.next += 1;
        let value = seed.deserialize(ValueDe { col, row: self.row });
        if self.root {
            value.map(Some).map_err(|e| e.in_column(i))
        } else {
            value.map(Some)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.children.len().saturating_sub(self.next))
    }
}

/// The values `next..end` of a list's child column.
struct ListAccess<'c, 'a> {
    col: &'c Col<'a>,
    next: usize,
    end: usize,
}

impl<'c, 'a> de::SeqAccess<'a> for ListAccess<'c, 'a> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.next >= self.end {
            return Ok(None);
        }
        let row = self.next;
        self.next += 1;
        seed.deserialize(ValueDe { col: self.col, row }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.end - self.next)
    }
}

/// The entries `next..end` of a map's key and value columns.
struct EntryAccess<'c, 'a> {
    keys: &'c Col<'a>,
    values: &'c Col<'a>,
    next: usize,
    end: usize,
}

impl<'c, 'a> de::MapAccess<'a> for EntryAccess<'c, 'a> {
    type Error = DeError;

    fn next_key_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.next >= self.end {
            return Ok(None);
        }
        seed.deserialize(ValueDe {
            col: self.keys,
            row: self.next,
        })
        .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<S::Value> {
        let row = self.next;
        self.next += 1;
        seed.deserialize(ValueDe {
            col: self.values,
            row,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.end.saturating_sub(self.next))
    }
}

/// The bytes of a binary value as a sequence of `u8` (what `Vec<u8>` asks for).
struct BytesAccess<'a> {
    bytes: &'a [u8],
    next: usize,
}

impl<'a> de::SeqAccess<'a> for BytesAccess<'a> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let Some(byte) = self.bytes.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let de: U8Deserializer<DeError> = byte.into_deserializer();
        seed.deserialize(de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len() - self.next)
    }
}

/// Row `row` of a batch whose columns are `root` (a struct column without NULLs): a struct
/// reads the columns by name, a map all columns by name, a tuple or sequence the columns by
/// position, and any other type the one column of a one-column result.
pub(crate) struct RowDe<'c, 'a> {
    pub(crate) root: &'c Col<'a>,
    pub(crate) row: usize,
}

impl<'c, 'a> RowDe<'c, 'a> {
    fn fields(&self) -> Result<&'c Fields<'a>> {
        match &self.root.kind {
            Kind::Struct(fields) => Ok(fields),
            _ => Err(DeError::new("a row is not a struct".into())),
        }
    }

    /// The one column of a one-column result, for a Rust type that is one value.
    fn single(&self, wanted: &str) -> Result<ValueDe<'c, 'a>> {
        let fields = self.fields()?;
        match fields.children.as_slice() {
            [col] => Ok(ValueDe { col, row: self.row }),
            cols => Err(DeError::new(format!(
                "a row of {} columns cannot be deserialized into {wanted}: use a struct, a \
                 tuple or a map (only a one-column result reads into a single value)",
                cols.len()
            ))),
        }
    }
}

macro_rules! single_column {
    ($($method:ident => $wanted:expr),* $(,)?) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
                self.single($wanted)?.$method(visitor).map_err(|e| e.in_column(0))
            }
        )*
    };
}

impl<'c, 'a> de::Deserializer<'a> for RowDe<'c, 'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    single_column! {
        deserialize_bool => "bool",
        deserialize_i8 => "i8",
        deserialize_i16 => "i16",
        deserialize_i32 => "i32",
        deserialize_i64 => "i64",
        deserialize_i128 => "i128",
        deserialize_u8 => "u8",
        deserialize_u16 => "u16",
        deserialize_u32 => "u32",
        deserialize_u64 => "u64",
        deserialize_u128 => "u128",
        deserialize_f32 => "f32",
        deserialize_f64 => "f64",
        deserialize_char => "char",
        deserialize_str => "a string",
        deserialize_string => "a string",
        deserialize_bytes => "bytes",
        deserialize_byte_buf => "bytes",
        deserialize_unit => "()",
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        // A row is never NULL; a one-column result may read into Option<value>.
        match self.fields()?.children.len() {
            1 => self
                .single("an Option")?
                .deserialize_option(visitor)
                .map_err(|e| e.in_column(0)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(TupleAccess {
            fields: self.fields()?,
            row: self.row,
            next: 0,
            root: true,
        })
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        let fields = self.fields()?;
        visitor.visit_map(StructAccess {
            fields,
            row: self.row,
            keys: AllFields(fields),
            next: 0,
            root: true,
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        struct_access(self.fields()?, self.row, fields, visitor, true)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.single(&format!("enum {name}"))?
            .deserialize_enum(name, variants, visitor)
            .map_err(|e| e.in_column(0))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! { <W: Visitor<'a>> identifier }
}
