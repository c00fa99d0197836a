//! Column-based pages (`COLUMN_BASED_SET`: one [`Column`] of values and NULL bitmap per result
//! column, the bitmap as [`Column`] describes it) to an Arrow `RecordBatch` of the result's
//! schema. Fixed-width values move into Arrow buffers without a copy.
//!
//! Decimals, dates and timestamps arrive as text and are parsed into the typed
//! arrays of the schema (see [`super::schema`] for the type table); the text of a NULL row is
//! never looked at. Each column is converted in one loop with its parser chosen once for the
//! column. What the parsers accept:
//!
//! - `DECIMAL(p,s)`: `[+-]digits[.digits][(e|E)[+-]digits]`, e.g. `-12.5`, `.5`, `7.`, `1E+2`
//!   (HiveServer2 and Spark send plain text, `BigDecimal.toPlainString`; the exponent form is
//!   `BigDecimal.toString`'s and is read exactly). Fewer fraction digits than the scale are
//!   padded with zeros; digits beyond the scale are accepted only when they are zeros (the value
//!   stays exact), any other digit there is an error, as is a value with more than `p` digits.
//!   Digits go straight into the unscaled integer: no floating point.
//! - `DATE`: `[+-]Y-MM-DD`, the year of one or more digits (`2024-02-29`, `+10000-01-01`,
//!   `-1-01-01`), proleptic Gregorian, month and day checked against the calendar.
//! - `TIMESTAMP`: a date as above, a space or `T`, `HH:MM:SS`, then optionally `.` and 1 to 9
//!   fraction digits. Fraction digits finer than the column's unit (beyond 6 for microseconds,
//!   which Hive's nanosecond timestamps can have) are truncated, that is rounded toward the past.
//!   The text is read as UTC (see [`super::schema`] on time zones).
//!
//! A non-NULL text that does not parse is a decode error naming the column (index and name),
//! the row (its index within the row set being decoded) and the text (at most 64 characters).

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, NullArray, PrimitiveArray, RecordBatch,
    RecordBatchOptions,
};
use arrow_buffer::{i256, BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{
    DataType, Field, SchemaRef, TimeUnit, DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION,
};

use super::schema::truncated;
use crate::error::{Error, Result};
use crate::results::inline_rows::{Column, ColumnValues};

/// Converts the columns of a column-based row set to one batch of `schema`; `None` when the
/// row set has no rows. Every column must have the same length, and there must be one column
/// per schema field.
pub(crate) fn columns_to_batch(
    schema: &SchemaRef,
    columns: Vec<Column>,
) -> Result<Option<RecordBatch>> {
    if columns.len() != schema.fields().len() {
        return Err(Error::decode(format!(
            "the row set has {} columns but the result schema has {}",
            columns.len(),
            schema.fields().len()
        )));
    }
    let Some(rows) = columns.first().map(Column::len) else {
        return Ok(None);
    };
    for (index, column) in columns.iter().enumerate() {
        if column.len() != rows {
            return Err(Error::decode(format!(
                "column {index} ({}) has {} values but column 0 has {rows}",
                schema.field(index).name(),
                column.len()
            )));
        }
    }
    if rows == 0 {
        return Ok(None);
    }
    let arrays = columns
        .into_iter()
        .zip(schema.fields().iter())
        .enumerate()
        .map(|(index, (column, field))| column_to_array(column, field, index))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?;
    Ok(Some(batch))
}

/// The Arrow null buffer for a Hive null bitmap over `len` rows, `None` when no row is NULL.
pub(crate) fn nulls_from_bitmap(bitmap: &[u8], len: usize) -> Option<NullBuffer> {
    let bytes = len.div_ceil(8);
    let bitmap = &bitmap[..bitmap.len().min(bytes)];
    if bitmap.iter().all(|&b| b == 0) {
        return None;
    }
    // Arrow's validity bitmap has the same bit order with the opposite meaning (set = valid).
    let mut validity = vec![0xFFu8; bytes];
    for (v, n) in validity.iter_mut().zip(bitmap) {
        *v = !n;
    }
    let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(validity), 0, len));
    (nulls.null_count() > 0).then_some(nulls)
}

fn primitive<T: ArrowPrimitiveType>(values: Vec<T::Native>, nulls: &[u8]) -> ArrayRef {
    let len = values.len();
    Arc::new(PrimitiveArray::<T>::new(
        ScalarBuffer::from(values),
        nulls_from_bitmap(nulls, len),
    ))
}

/// Where a column sits in the result, for error messages.
#[derive(Clone, Copy)]
struct ColumnRef<'a> {
    index: usize,
    field: &'a Field,
}

impl ColumnRef<'_> {
    /// The decode error for the non-NULL text at `row` that is not a valid value of the column.
    fn bad_value(self, row: usize, text: &str, reason: &str) -> Error {
        let shown = truncated(text);
        let more = if shown.len() < text.len() { "..." } else { "" };
        Error::decode(format!(
            "column {} ({}), row {row} of the row set: {shown:?}{more} is not a valid {}: {reason}",
            self.index,
            self.field.name(),
            self.field.data_type()
        ))
    }
}

fn column_to_array(column: Column, field: &Field, index: usize) -> Result<ArrayRef> {
    let at = ColumnRef { index, field };
    let len = column.len();
    let Column { values, nulls } = column;
    let array: ArrayRef = match (values, field.data_type()) {
        (ColumnValues::Bool(values), DataType::Boolean) => Arc::new(BooleanArray::new(
            BooleanBuffer::from(values),
            nulls_from_bitmap(&nulls, len),
        )),
        (ColumnValues::Int8(values), DataType::Int8) => primitive::<Int8Type>(values, &nulls),
        (ColumnValues::Int16(values), DataType::Int16) => primitive::<Int16Type>(values, &nulls),
        (ColumnValues::Int32(values), DataType::Int32) => primitive::<Int32Type>(values, &nulls),
        (ColumnValues::Int64(values), DataType::Int64) => primitive::<Int64Type>(values, &nulls),
        (ColumnValues::Float64(values), DataType::Float64) => {
            primitive::<Float64Type>(values, &nulls)
        }
        (ColumnValues::Float64(values), DataType::Float32) => {
            let values = values.into_iter().map(|v| v as f32).collect();
            primitive::<Float32Type>(values, &nulls)
        }
        (ColumnValues::Text(values), DataType::Utf8) => {
            let nulls = nulls_from_bitmap(&nulls, len);
            let bytes = total_bytes(values.iter().map(String::len), at)?;
            let mut builder = StringBuilder::with_capacity(len, bytes);
            match &nulls {
                None => values.iter().for_each(|v| builder.append_value(v)),
                Some(nulls) => {
                    for (v, valid) in values.iter().zip(nulls.iter()) {
                        if valid {
                            builder.append_value(v);
                        } else {
                            builder.append_null();
                        }
                    }
                }
            }
            Arc::new(builder.finish())
        }
        (ColumnValues::Binary(values), DataType::Binary) => {
            let nulls = nulls_from_bitmap(&nulls, len);
            let bytes = total_bytes(values.iter().map(Vec::len), at)?;
            let mut builder = BinaryBuilder::with_capacity(len, bytes);
            match &nulls {
                None => values.iter().for_each(|v| builder.append_value(v)),
                Some(nulls) => {
                    for (v, valid) in values.iter().zip(nulls.iter()) {
                        if valid {
                            builder.append_value(v);
                        } else {
                            builder.append_null();
                        }
                    }
                }
            }
            Arc::new(builder.finish())
        }
        (ColumnValues::Text(texts), DataType::Decimal128(precision, scale)) => {
            let (precision, scale) = (*precision, *scale);
            check_precision(at, precision, DECIMAL128_MAX_PRECISION)?;
            let array = parse_column::<Decimal128Type>(&texts, &nulls, at, |text| {
                parse_decimal::<i128>(text, precision, scale)
            })?;
            Arc::new(array.with_precision_and_scale(precision, scale)?)
        }
        (ColumnValues::Text(texts), DataType::Decimal256(precision, scale)) => {
            let (precision, scale) = (*precision, *scale);
            check_precision(at, precision, DECIMAL256_MAX_PRECISION)?;
            let array = parse_column::<Decimal256Type>(&texts, &nulls, at, |text| {
                parse_decimal::<i256>(text, precision, scale)
            })?;
            Arc::new(array.with_precision_and_scale(precision, scale)?)
        }
        (ColumnValues::Text(texts), DataType::Date32) => Arc::new(parse_column::<Date32Type>(
            &texts,
            &nulls,
            at,
            parse_date32,
        )?),
        (ColumnValues::Text(texts), DataType::Timestamp(unit, zone)) => {
            let zone = zone.clone();
            match unit {
                TimeUnit::Second => Arc::new(
                    parse_column::<TimestampSecondType>(&texts, &nulls, at, |t| {
                        parse_timestamp(t, 1)
                    })?
                    .with_timezone_opt(zone),
                ),
                TimeUnit::Millisecond => Arc::new(
                    parse_column::<TimestampMillisecondType>(&texts, &nulls, at, |t| {
                        parse_timestamp(t, 1_000)
                    })?
                    .with_timezone_opt(zone),
                ),
                TimeUnit::Microsecond => Arc::new(
                    parse_column::<TimestampMicrosecondType>(&texts, &nulls, at, |t| {
                        parse_timestamp(t, 1_000_000)
                    })?
                    .with_timezone_opt(zone),
                ),
                TimeUnit::Nanosecond => Arc::new(
                    parse_column::<TimestampNanosecondType>(&texts, &nulls, at, |t| {
                        parse_timestamp(t, 1_000_000_000)
                    })?
                    .with_timezone_opt(zone),
                ),
            }
        }
        // VOID: every row is NULL whatever the server put in the column.
        (_, DataType::Null) => Arc::new(NullArray::new(len)),
        // A column the schema types as a string but the server sent typed: show its values.
        (values, DataType::Utf8) => stringify(values, &nulls),
        (values, other) => {
            return Err(Error::decode(format!(
                "column {index} ({}) is {other} in the result schema but the server sent {}",
                field.name(),
                values.kind()
            )))
        }
    };
    Ok(array)
}

/// Checks that a decimal field's precision fits its Arrow type (at most `max` digits), so that
/// parsing at most `precision` digits cannot overflow.
fn check_precision(at: ColumnRef<'_>, precision: u8, max: u8) -> Result<()> {
    if precision > max {
        return Err(Error::decode(format!(
            "column {} ({}) is {} in the result schema, wider than {max} digits",
            at.index,
            at.field.name(),
            at.field.data_type()
        )));
    }
    Ok(())
}

/// The total of `lengths`, which must fit the 32-bit offsets of `Utf8`/`Binary` arrays.
fn total_bytes(lengths: impl Iterator<Item = usize>, at: ColumnRef<'_>) -> Result<usize> {
    let total: usize = lengths.sum();
    if i32::try_from(total).is_err() {
        return Err(Error::decode(format!(
            "column {} ({}) holds {total} bytes in one row set, more than one Arrow array holds \
             (2 GiB)",
            at.index,
            at.field.name()
        )));
    }
    Ok(total)
}

/// Parses every non-NULL text of a string column with `parse` (one monomorphic loop; NULL rows
/// get the default value and their text is skipped).
fn parse_column<T: ArrowPrimitiveType>(
    texts: &[String],
    nulls: &[u8],
    at: ColumnRef<'_>,
    parse: impl Fn(&[u8]) -> std::result::Result<T::Native, &'static str>,
) -> Result<PrimitiveArray<T>> {
    let nulls = nulls_from_bitmap(nulls, texts.len());
    let mut values: Vec<T::Native> = Vec::with_capacity(texts.len());
    match &nulls {
        None => {
            for (row, text) in texts.iter().enumerate() {
                match parse(text.as_bytes()) {
                    Ok(v) => values.push(v),
                    Err(reason) => return Err(at.bad_value(row, text, reason)),
                }
            }
        }
        Some(nulls) => {
            for (row, (text, valid)) in texts.iter().zip(nulls.iter()).enumerate() {
                if !valid {
                    values.push(T::Native::default());
                    continue;
                }
                match parse(text.as_bytes()) {
                    Ok(v) => values.push(v),
                    Err(reason) => return Err(at.bad_value(row, text, reason)),
                }
            }
        }
    }
    Ok(PrimitiveArray::new(ScalarBuffer::from(values), nulls))
}

/// The unscaled integer of a decimal column (`i128` for `Decimal128`, `i256` for `Decimal256`),
/// built one decimal digit at a time.
trait Unscaled: Copy {
    const ZERO: Self;
    /// `self * 10 + digit`.
    fn push_digit(self, digit: u8) -> Self;
    /// `-self`.
    fn negate(self) -> Self;
}

impl Unscaled for i128 {
    const ZERO: Self = 0;
    #[inline]
    fn push_digit(self, digit: u8) -> Self {
        // At most 38 digits are pushed (the precision was checked first): no overflow.
        self * 10 + i128::from(digit)
    }
    #[inline]
    fn negate(self) -> Self {
        -self
    }
}

impl Unscaled for i256 {
    const ZERO: Self = i256::ZERO;
    #[inline]
    fn push_digit(self, digit: u8) -> Self {
        // At most 76 digits are pushed (the precision was checked first): no overflow.
        self.wrapping_mul(i256::from_i128(10))
            .wrapping_add(i256::from_i128(i128::from(digit)))
    }
    #[inline]
    fn negate(self) -> Self {
        self.wrapping_neg()
    }
}

/// The end of the run of ASCII digits of `text` starting at `from`.
#[inline]
fn digits_end(text: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < text.len() && text[at].is_ascii_digit() {
        at += 1;
    }
    at
}

/// The unscaled value of decimal text for `DECIMAL(precision, scale)` (see the module
/// documentation for the accepted forms); the error is the reason the text is not one.
#[inline]
fn parse_decimal<N: Unscaled>(
    text: &[u8],
    precision: u8,
    scale: i8,
) -> std::result::Result<N, &'static str> {
    let mut at = 0;
    let negative = match text.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let int_start = at;
    at = digits_end(text, at);
    let int = &text[int_start..at];
    let mut frac: &[u8] = &[];
    if text.get(at) == Some(&b'.') {
        let frac_start = at + 1;
        at = digits_end(text, frac_start);
        frac = &text[frac_start..at];
    }
    if int.is_empty() && frac.is_empty() {
        return Err("no digits");
    }
    let mut exponent: i64 = 0;
    if matches!(text.get(at), Some(b'e' | b'E')) {
        at += 1;
        let exponent_negative = match text.get(at) {
            Some(b'-') => {
                at += 1;
                true
            }
            Some(b'+') => {
                at += 1;
                false
            }
            _ => false,
        };
        let start = at;
        at = digits_end(text, at);
        if at == start {
            return Err("no digits in the exponent");
        }
        if at - start > 6 {
            return Err("the exponent is out of range");
        }
        for &d in &text[start..at] {
            exponent = exponent * 10 + i64::from(d - b'0');
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    if at != text.len() {
        return Err("unexpected character");
    }
    // The value is digits(int ++ frac) * 10^(exponent - frac.len()); the unscaled value is that
    // times 10^scale: the digits followed by `shift` zeros, or without their last `-shift`
    // digits, which must then be zeros.
    let total = int.len() + frac.len();
    let digit = |i: usize| {
        if i < int.len() {
            int[i]
        } else {
            frac[i - int.len()]
        }
    };
    let shift = exponent + i64::from(scale) - frac.len() as i64;
    let kept = if shift < 0 {
        let dropped = usize::try_from(-shift).unwrap_or(usize::MAX).min(total);
        let kept = total - dropped;
        if (kept..total).any(|i| digit(i) != b'0') {
            return Err("more fraction digits than the scale");
        }
        kept
    } else {
        total
    };
    let first = (0..kept).find(|&i| digit(i) != b'0').unwrap_or(kept);
    if first == kept {
        return Ok(N::ZERO);
    }
    let zeros = shift.max(0) as u64;
    if (kept - first) as u64 + zeros > u64::from(precision) {
        return Err("more digits than the precision");
    }
    let mut value = N::ZERO;
    for &d in &int[first.min(int.len())..kept.min(int.len())] {
        value = value.push_digit(d - b'0');
    }
    if kept > int.len() {
        for &d in &frac[first.max(int.len()) - int.len()..kept - int.len()] {
            value = value.push_digit(d - b'0');
        }
    }
    for _ in 0..zeros {
        value = value.push_digit(0);
    }
    Ok(if negative { value.negate() } else { value })
}

/// `n` ASCII digits of `text` from `at` as a number.
#[inline]
fn fixed_digits(text: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = text.get(at..at + n)?;
    let mut value = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
    }
    Some(value)
}

/// Whether `year` is a leap year of the proleptic Gregorian calendar.
#[inline]
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date, with years counted in 400-year
/// cycles of 146,097 days starting on March 1st (so the leap day ends a cycle's year).
#[inline]
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let cycle = year.div_euclid(400);
    let year_of_cycle = year.rem_euclid(400);
    // Months counted from March: March is 0, February is 11.
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    // 719,468 days separate 0000-03-01 from 1970-01-01.
    cycle * 146_097 + day_of_cycle - 719_468
}

/// The date at the start of `text` (`[+-]Y-MM-DD`) as days since 1970-01-01, and where it ends.
#[inline]
fn parse_date_prefix(text: &[u8]) -> std::result::Result<(i64, usize), &'static str> {
    let (negative, start) = match text.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let end = digits_end(text, start);
    if end == start || end - start > 9 {
        return Err("expected a date YYYY-MM-DD");
    }
    let mut year: i64 = 0;
    for &d in &text[start..end] {
        year = year * 10 + i64::from(d - b'0');
    }
    if negative {
        year = -year;
    }
    let (Some(b'-'), Some(month), Some(b'-'), Some(day)) = (
        text.get(end),
        fixed_digits(text, end + 1, 2),
        text.get(end + 3),
        fixed_digits(text, end + 4, 2),
    ) else {
        return Err("expected a date YYYY-MM-DD");
    };
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return Err("the month is not 01 to 12"),
    };
    if day == 0 || day > month_days {
        return Err("the day is not in the month");
    }
    Ok((days_from_civil(year, month, day), end + 6))
}

/// A `DATE` text as `Date32` (days since 1970-01-01).
#[inline]
fn parse_date32(text: &[u8]) -> std::result::Result<i32, &'static str> {
    let (days, end) = parse_date_prefix(text)?;
    if end != text.len() {
        return Err("unexpected characters after the date");
    }
    i32::try_from(days).map_err(|_| "the date is out of range")
}

/// A `TIMESTAMP` text as a count of `1 / units_per_second` seconds since the epoch, fraction
/// digits finer than the unit truncated.
#[inline]
fn parse_timestamp(text: &[u8], units_per_second: i64) -> std::result::Result<i64, &'static str> {
    const EXPECTED: &str = "expected a timestamp YYYY-MM-DD HH:MM:SS[.fraction]";
    let (days, at) = parse_date_prefix(text)?;
    let (Some(b' ' | b'T'), Some(hour), Some(b':'), Some(minute), Some(b':'), Some(second)) = (
        text.get(at),
        fixed_digits(text, at + 1, 2),
        text.get(at + 3),
        fixed_digits(text, at + 4, 2),
        text.get(at + 6),
        fixed_digits(text, at + 7, 2),
    ) else {
        return Err(EXPECTED);
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err("the time of day is out of range");
    }
    let mut at = at + 9;
    // The fraction in units, from at most 9 digits (nanoseconds).
    let mut fraction: i64 = 0;
    if text.get(at) == Some(&b'.') {
        let start = at + 1;
        at = digits_end(text, start);
        let digits = at - start;
        if digits == 0 {
            return Err(EXPECTED);
        }
        if digits > 9 {
            return Err("more than 9 fraction digits");
        }
        let mut nanos: i64 = 0;
        for &d in &text[start..at] {
            nanos = nanos * 10 + i64::from(d - b'0');
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        fraction = nanos / (1_000_000_000 / units_per_second);
    }
    if at != text.len() {
        return Err("unexpected characters after the timestamp");
    }
    let seconds = i64::from(hour * 3600 + minute * 60 + second);
    days.checked_mul(86_400)
        .and_then(|s| s.checked_add(seconds))
        .and_then(|s| s.checked_mul(units_per_second))
        .and_then(|u| u.checked_add(fraction))
        .ok_or("the timestamp is out of range")
}

/// A typed column as text (`Display` of each value, binaries as lossy UTF-8), written straight
/// into the array's buffer.
fn stringify(values: ColumnValues, nulls: &[u8]) -> ArrayRef {
    fn build<V>(
        values: &[V],
        nulls: &[u8],
        show: impl Fn(&mut StringBuilder, &V) -> std::fmt::Result,
    ) -> ArrayRef {
        let nulls = nulls_from_bitmap(nulls, values.len());
        let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 8);
        for (i, v) in values.iter().enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                builder.append_null();
            } else {
                // Writing into the builder's buffer cannot fail; `append_value("")` ends the
                // value written so far.
                let _ = show(&mut builder, v);
                builder.append_value("");
            }
        }
        Arc::new(builder.finish())
    }
    use std::fmt::Write;
    match &values {
        ColumnValues::Bool(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Int8(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Int16(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Int32(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Int64(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Float64(v) => build(v, nulls, |b, v| write!(b, "{v}")),
        ColumnValues::Text(v) => build(v, nulls, |b, v| b.write_str(v)),
        ColumnValues::Binary(v) => build(v, nulls, |b, v| b.write_str(&String::from_utf8_lossy(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thrift::tcli::{
        TBinaryColumn, TBoolColumn, TByteColumn, TColumn, TDoubleColumn, TI16Column, TI32Column,
        TI64Column, TStringColumn,
    };
    use crate::ErrorKind;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use arrow_schema::Schema;
    use thrift::OrderedFloat;

    /// Thrift columns, converted as the Thrift backend converts them, to one batch.
    fn thrift_columns_to_batch(
        schema: &SchemaRef,
        columns: Vec<TColumn>,
    ) -> Result<Option<RecordBatch>> {
        super::columns_to_batch(schema, columns.into_iter().map(Column::from).collect())
    }

    fn schema(fields: Vec<(&str, DataType)>) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn an_empty_bitmap_means_no_nulls() {
        let s = schema(vec![("id", DataType::Int64)]);
        let col = TColumn::I64Val(TI64Column::new(vec![1, 2, 3], vec![]));
        let batch = thrift_columns_to_batch(&s, vec![col]).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.column(0).null_count(), 0);
        assert!(batch.column(0).nulls().is_none());
    }

    #[test]
    fn null_bit_i_is_bit_i_mod_8_of_byte_i_div_8() {
        // Rows 0, 3, 8 and 10 are NULL: byte 0 = 0b0000_1001, byte 1 = 0b0000_0101.
        let s = schema(vec![("v", DataType::Int32)]);
        let col = TColumn::I32Val(TI32Column::new(
            (0..11).collect(),
            vec![0b0000_1001, 0b0000_0101],
        ));
        let batch = thrift_columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let nulls: Vec<usize> = (0..11).filter(|&i| batch.column(0).is_null(i)).collect();
        assert_eq!(nulls, vec![0, 3, 8, 10]);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(1), 1);
    }

    #[test]
    fn a_short_bitmap_leaves_the_remaining_rows_non_null() {
        let s = schema(vec![("v", DataType::Utf8)]);
        let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let col = TColumn::StringVal(TStringColumn::new(values, vec![0b1000_0000]));
        let batch = thrift_columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let strings = batch.column(0).as_string::<i32>();
        assert_eq!(strings.null_count(), 1);
        assert!(strings.is_null(7));
        assert_eq!(strings.value(19), "v19");
    }

    #[test]
    fn converts_every_column_type() {
        let s = schema(vec![
            ("b", DataType::Boolean),
            ("i8", DataType::Int8),
            ("i16", DataType::Int16),
            ("i32", DataType::Int32),
            ("i64", DataType::Int64),
            ("f32", DataType::Float32),
            ("f64", DataType::Float64),
            ("s", DataType::Utf8),
            ("bin", DataType::Binary),
        ]);
        let null_row_1 = vec![0b10];
        let columns = vec![
            TColumn::BoolVal(TBoolColumn::new(vec![true, false], null_row_1.clone())),
            TColumn::ByteVal(TByteColumn::new(vec![-8, 0], null_row_1.clone())),
            TColumn::I16Val(TI16Column::new(vec![-16, 0], null_row_1.clone())),
            TColumn::I32Val(TI32Column::new(vec![-32, 0], null_row_1.clone())),
            TColumn::I64Val(TI64Column::new(vec![-64, 0], null_row_1.clone())),
            TColumn::DoubleVal(TDoubleColumn::new(
                vec![OrderedFloat(1.5), OrderedFloat(0.0)],
                null_row_1.clone(),
            )),
            TColumn::DoubleVal(TDoubleColumn::new(
                vec![OrderedFloat(2.25), OrderedFloat(0.0)],
                null_row_1.clone(),
            )),
            TColumn::StringVal(TStringColumn::new(
                vec!["héllo".into(), String::new()],
                null_row_1.clone(),
            )),
            TColumn::BinaryVal(TBinaryColumn::new(vec![vec![0, 255], vec![]], null_row_1)),
        ];
        let batch = thrift_columns_to_batch(&s, columns).unwrap().unwrap();
        assert_eq!(batch.schema(), s);
        for c in batch.columns() {
            assert!(c.is_valid(0) && c.is_null(1), "{:?}", c.data_type());
        }
        assert!(batch.column(0).as_boolean().value(0));
        assert_eq!(batch.column(1).as_primitive::<Int8Type>().value(0), -8);
        assert_eq!(batch.column(2).as_primitive::<Int16Type>().value(0), -16);
        assert_eq!(batch.column(3).as_primitive::<Int32Type>().value(0), -32);
        assert_eq!(batch.column(4).as_primitive::<Int64Type>().value(0), -64);
        assert_eq!(batch.column(5).as_primitive::<Float32Type>().value(0), 1.5);
        assert_eq!(batch.column(6).as_primitive::<Float64Type>().value(0), 2.25);
        assert_eq!(batch.column(7).as_string::<i32>().value(0), "héllo");
        assert_eq!(batch.column(8).as_binary::<i32>().value(0), &[0, 255]);
    }

    #[test]
    fn typed_values_for_a_string_column_are_shown_as_text() {
        let s = schema(vec![("d", DataType::Utf8)]);
        let col = TColumn::I32Val(TI32Column::new(vec![7, 0], vec![0b10]));
        let batch = thrift_columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let strings = batch.column(0).as_string::<i32>();
        assert_eq!(strings.value(0), "7");
        assert!(strings.is_null(1));
    }

    #[test]
    fn mismatched_column_lengths_are_a_decode_error() {
        let s = schema(vec![("a", DataType::Int64), ("b", DataType::Utf8)]);
        let columns = vec![
            TColumn::I64Val(TI64Column::new(vec![1, 2, 3], vec![])),
            TColumn::StringVal(TStringColumn::new(vec!["x".into()], vec![])),
        ];
        let err = thrift_columns_to_batch(&s, columns).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("column 1 (b) has 1 values but column 0 has 3"),
            "{err}"
        );
    }

    #[test]
    fn a_column_count_or_type_mismatch_is_a_decode_error() {
        let s = schema(vec![("a", DataType::Int64), ("b", DataType::Utf8)]);
        let one = vec![TColumn::I64Val(TI64Column::new(vec![1], vec![]))];
        let err = thrift_columns_to_batch(&s, one).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("1 columns but the result schema has 2"),
            "{err}"
        );

        let s = schema(vec![("a", DataType::Int64)]);
        let wrong = vec![TColumn::BoolVal(TBoolColumn::new(vec![true], vec![]))];
        let err = thrift_columns_to_batch(&s, wrong).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("is Int64 in the result schema but the server sent booleans"),
            "{err}"
        );
    }

    #[test]
    fn zero_rows_yield_no_batch() {
        let s = schema(vec![("a", DataType::Int64)]);
        let empty = vec![TColumn::I64Val(TI64Column::new(vec![], vec![]))];
        assert!(thrift_columns_to_batch(&s, empty).unwrap().is_none());
        assert!(thrift_columns_to_batch(&schema(vec![]), vec![])
            .unwrap()
            .is_none());
    }

    fn strings(values: &[&str], nulls: Vec<u8>) -> TColumn {
        TColumn::StringVal(TStringColumn::new(
            values.iter().map(|v| v.to_string()).collect(),
            nulls,
        ))
    }

    /// Converts one string column of type `data_type` (named `c`, at index 1 behind an INT
    /// column named `id`).
    fn convert(data_type: DataType, values: &[&str], nulls: Vec<u8>) -> Result<ArrayRef> {
        let s = schema(vec![("id", DataType::Int32), ("c", data_type)]);
        let ids = TColumn::I32Val(TI32Column::new(vec![0; values.len()], vec![]));
        let batch = thrift_columns_to_batch(&s, vec![ids, strings(values, nulls)])?;
        Ok(batch.expect("rows").column(1).clone())
    }

    /// Asserts that `text` at row 2 of a column of `data_type` is a decode error naming the
    /// column, the row, the text and `reason`.
    fn assert_malformed(data_type: DataType, text: &str, reason: &str) {
        let err = convert(data_type.clone(), &["", "", text], vec![0b011])
            .expect_err(&format!("{text:?} must not parse as {data_type}"));
        assert_eq!(err.kind(), ErrorKind::Decode);
        let message = err.to_string();
        assert!(
            message.contains("column 1 (c), row 2 of the row set"),
            "{message}"
        );
        assert!(message.contains(&format!("{text:?}")), "{message}");
        assert!(message.contains(&data_type.to_string()), "{message}");
        assert!(message.contains(reason), "{text:?}: {message}");
    }

    #[test]
    fn decimals_are_parsed_exactly_with_their_scale() {
        let t = DataType::Decimal128(10, 2);
        let array = convert(
            t.clone(),
            &[
                "-12.50",
                "garbage",
                "0.05",
                "7",
                "+3.1",
                ".5",
                "8.",
                "-0",
                "00012.30",
                "99999999.99",
                "1E+2",
                "1.5e-1",
                "1.200",
                "-0.00",
                "12300E-4",
            ],
            vec![0b10],
        )
        .unwrap();
        assert_eq!(array.data_type(), &t);
        let d = array.as_primitive::<Decimal128Type>();
        let got: Vec<Option<i128>> = d.iter().collect();
        assert_eq!(
            got,
            vec![
                Some(-1250),
                None,
                Some(5),
                Some(700),
                Some(310),
                Some(50),
                Some(800),
                Some(0),
                Some(1230),
                Some(9_999_999_999),
                Some(10_000),
                Some(15),
                Some(120),
                Some(0),
                Some(123),
            ]
        );
    }

    #[test]
    fn decimals_use_the_whole_precision_of_decimal128_and_decimal256() {
        let max38 = "9".repeat(38);
        let array = convert(
            DataType::Decimal128(38, 0),
            &[&max38, &format!("-{max38}")],
            vec![],
        )
        .unwrap();
        let d = array.as_primitive::<Decimal128Type>();
        assert_eq!(d.value(0), 10i128.pow(38) - 1);
        assert_eq!(d.value(1), -(10i128.pow(38) - 1));
        let small = convert(
            DataType::Decimal128(38, 38),
            &["0.00000000000000000000000000000000000001"],
            vec![],
        )
        .unwrap();
        assert_eq!(small.as_primitive::<Decimal128Type>().value(0), 1);

        let t = DataType::Decimal256(76, 4);
        let int72 = "1".repeat(72);
        let array = convert(t.clone(), &[&format!("-{int72}.5"), "", "3.25"], vec![0b10]).unwrap();
        assert_eq!(array.data_type(), &t);
        let d = array.as_primitive::<Decimal256Type>();
        let expected = i256::from_string(&format!("-{int72}5000")).unwrap();
        assert_eq!(d.value(0), expected);
        assert!(d.is_null(1));
        assert_eq!(d.value(2), i256::from_i128(32_500));
    }

    #[test]
    fn malformed_decimals_are_decode_errors_naming_column_row_and_text() {
        let t = DataType::Decimal128(5, 2);
        assert_malformed(t.clone(), "12.345", "more fraction digits than the scale");
        assert_malformed(t.clone(), "1000.00", "more digits than the precision");
        assert_malformed(t.clone(), "1E+3", "more digits than the precision");
        assert_malformed(t.clone(), "abc", "no digits");
        assert_malformed(t.clone(), "", "no digits");
        assert_malformed(t.clone(), "-", "no digits");
        assert_malformed(t.clone(), ".", "no digits");
        assert_malformed(t.clone(), "1.2.3", "unexpected character");
        assert_malformed(t.clone(), "1,5", "unexpected character");
        assert_malformed(t.clone(), " 1.5", "no digits");
        assert_malformed(t.clone(), "1.5 ", "unexpected character");
        assert_malformed(t.clone(), "--1", "no digits");
        assert_malformed(t.clone(), "1e", "no digits in the exponent");
        assert_malformed(t.clone(), "1e+9999999", "exponent is out of range");
        assert_malformed(t.clone(), "NaN", "no digits");
        assert_malformed(DataType::Decimal256(40, 0), "1.5", "more fraction digits");
    }

    #[test]
    fn a_decimal_field_wider_than_its_arrow_type_is_an_error_not_an_overflow() {
        let err = convert(DataType::Decimal128(39, 0), &[&"9".repeat(39)], vec![]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("wider than 38 digits"), "{err}");
        let err = convert(DataType::Decimal256(77, 0), &["1"], vec![]).unwrap_err();
        assert!(err.to_string().contains("wider than 76 digits"), "{err}");
    }

    #[test]
    fn an_error_shows_at_most_64_characters_of_the_text() {
        let long = format!("1.{}", "7".repeat(200));
        let err = convert(DataType::Decimal128(10, 2), &[&long], vec![]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("\"1.{}\"...", "7".repeat(62))),
            "{message}"
        );
        assert!(!message.contains(&"7".repeat(63)), "{message}");
        assert!(message.contains("row 0 of the row set"), "{message}");
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        let array = convert(
            DataType::Date32,
            &[
                "1970-01-01",
                "not a date",
                "1969-12-31",
                "2000-02-29",
                "2024-12-31",
                "0001-01-01",
                "9999-12-31",
                "+10000-01-01",
                "-1-01-01",
                "1900-03-01",
            ],
            vec![0b10],
        )
        .unwrap();
        let d = array.as_primitive::<Date32Type>();
        let got: Vec<Option<i32>> = d.iter().collect();
        assert_eq!(
            got,
            vec![
                Some(0),
                None,
                Some(-1),
                Some(11_016),
                Some(20_088),
                Some(-719_162),
                Some(2_932_896),
                Some(2_932_897),
                Some(-719_893),
                Some(-25_508),
            ]
        );
    }

    #[test]
    fn dates_written_by_the_encoder_parse_back() {
        use crate::results::encode::to_columns;
        let days: Vec<i32> = (-800_000..3_000_000)
            .step_by(997)
            .chain([0, -1, 59, 60])
            .collect();
        let original: ArrayRef = Arc::new(arrow_array::Date32Array::from(days));
        let s = schema(vec![("c", DataType::Date32)]);
        let batch = RecordBatch::try_new(s.clone(), vec![original.clone()]).unwrap();
        let back = thrift_columns_to_batch(&s, to_columns(&batch).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(back.column(0), &original);
    }

    #[test]
    fn malformed_dates_are_decode_errors_naming_column_row_and_text() {
        let t = DataType::Date32;
        assert_malformed(t.clone(), "2024-02-30", "the day is not in the month");
        assert_malformed(t.clone(), "2023-02-29", "the day is not in the month");
        assert_malformed(t.clone(), "1900-02-29", "the day is not in the month");
        assert_malformed(t.clone(), "2024-13-01", "the month is not 01 to 12");
        assert_malformed(t.clone(), "2024-00-10", "the month is not 01 to 12");
        assert_malformed(t.clone(), "2024-01-00", "the day is not in the month");
        assert_malformed(t.clone(), "2024-1-01", "expected a date");
        assert_malformed(t.clone(), "2024/01/01", "expected a date");
        assert_malformed(t.clone(), "", "expected a date");
        assert_malformed(t.clone(), "yesterday", "expected a date");
        assert_malformed(t.clone(), "2024-01-01 00:00:00", "unexpected characters");
        assert_malformed(t.clone(), "999999999-01-01", "the date is out of range");
        assert_malformed(t.clone(), "1234567890-01-01", "expected a date");
    }

    #[test]
    fn timestamps_are_microseconds_since_the_epoch_read_as_utc() {
        let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let array = convert(
            t.clone(),
            &[
                "1970-01-01 00:00:01",
                "garbage",
                "1970-01-01 00:00:01.5",
                "1969-12-31 23:59:59.999999",
                "2023-11-14T22:13:20.123456",
                "2023-11-14 22:13:20.123456789",
                "2000-02-29 12:00:00.1",
                "1969-12-31 23:59:59.9999999",
            ],
            vec![0b10],
        )
        .unwrap();
        assert_eq!(array.data_type(), &t);
        let ts = array.as_primitive::<TimestampMicrosecondType>();
        let got: Vec<Option<i64>> = ts.iter().collect();
        assert_eq!(
            got,
            vec![
                Some(1_000_000),
                None,
                Some(1_500_000),
                Some(-1),
                Some(1_700_000_000_123_456),
                Some(1_700_000_000_123_456),
                Some(951_825_600_100_000),
                Some(-1),
            ]
        );
    }

    #[test]
    fn timestamps_of_other_units_truncate_finer_digits() {
        let text = ["1970-01-01 00:00:01.987654321", "1969-12-31 23:59:59.5"];
        let cases: [(TimeUnit, [i64; 2]); 4] = [
            (TimeUnit::Second, [1, -1]),
            (TimeUnit::Millisecond, [1_987, -500]),
            (TimeUnit::Microsecond, [1_987_654, -500_000]),
            (TimeUnit::Nanosecond, [1_987_654_321, -500_000_000]),
        ];
        for (unit, expected) in cases {
            let array = convert(DataType::Timestamp(unit, None), &text, vec![]).unwrap();
            let got: Vec<i64> = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .values()
                    .to_vec(),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec(),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .to_vec(),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .values()
                    .to_vec(),
            };
            assert_eq!(got, expected, "{unit:?}");
        }
    }

    #[test]
    fn timestamps_written_by_the_encoder_parse_back() {
        use crate::results::encode::to_columns;
        let micros: Vec<i64> = (-40_000i64..40_000)
            .map(|i| i * 7_919_000_003 + i % 1_000_000)
            .chain([0, -1, 1, 253_402_300_799_999_999, -62_135_596_800_000_000])
            .collect();
        let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let original: ArrayRef =
            Arc::new(arrow_array::TimestampMicrosecondArray::from(micros).with_timezone("UTC"));
        let s = schema(vec![("c", t)]);
        let batch = RecordBatch::try_new(s.clone(), vec![original.clone()]).unwrap();
        let back = thrift_columns_to_batch(&s, to_columns(&batch).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(back.column(0), &original);
    }

    #[test]
    fn malformed_timestamps_are_decode_errors_naming_column_row_and_text() {
        let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_malformed(t.clone(), "2024-01-01", "expected a timestamp");
        assert_malformed(t.clone(), "2024-01-01 12:00", "expected a timestamp");
        assert_malformed(t.clone(), "2024-01-01_12:00:00", "expected a timestamp");
        assert_malformed(
            t.clone(),
            "2024-01-01 24:00:00",
            "time of day is out of range",
        );
        assert_malformed(
            t.clone(),
            "2024-01-01 23:60:00",
            "time of day is out of range",
        );
        assert_malformed(
            t.clone(),
            "2024-01-01 23:59:60",
            "time of day is out of range",
        );
        assert_malformed(t.clone(), "2024-01-01 1:00:00", "expected a timestamp");
        assert_malformed(t.clone(), "2024-01-01 12:00:00.", "expected a timestamp");
        assert_malformed(t.clone(), "2024-01-01 12:00:00.1234567891", "more than 9");
        assert_malformed(t.clone(), "2024-01-01 12:00:00Z", "unexpected characters");
        assert_malformed(
            t.clone(),
            "2024-01-01 12:00:00 UTC",
            "unexpected characters",
        );
        assert_malformed(
            t.clone(),
            "2024-02-30 12:00:00",
            "the day is not in the month",
        );
        assert_malformed(t.clone(), "999999999-01-01 00:00:00", "out of range");
        assert_malformed(t.clone(), "", "expected a date");
    }

    #[test]
    fn the_text_of_a_null_row_is_never_parsed() {
        for t in [
            DataType::Decimal128(5, 2),
            DataType::Decimal256(50, 2),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ] {
            let array = convert(t.clone(), &["garbage", "", "\u{0}\u{ff}"], vec![0b111]).unwrap();
            assert_eq!(array.data_type(), &t);
            assert_eq!(array.null_count(), 3, "{t}");
        }
    }

    #[test]
    fn a_void_column_is_a_null_array_of_the_column_length() {
        for column in [
            strings(&["", "", ""], vec![0b111]),
            TColumn::I32Val(TI32Column::new(vec![0, 0, 0], vec![])),
            TColumn::BoolVal(TBoolColumn::new(vec![false; 3], vec![0b101])),
        ] {
            let s = schema(vec![("n", DataType::Null)]);
            let batch = thrift_columns_to_batch(&s, vec![column]).unwrap().unwrap();
            assert_eq!(batch.column(0).data_type(), &DataType::Null);
            assert_eq!(batch.column(0).len(), 3);
            assert_eq!(batch.column(0).logical_null_count(), 3);
        }
    }

    #[test]
    fn a_typed_column_for_a_decimal_date_or_timestamp_is_a_type_mismatch() {
        for t in [
            DataType::Decimal128(5, 2),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ] {
            let s = schema(vec![("x", t.clone())]);
            let col = TColumn::I32Val(TI32Column::new(vec![1], vec![]));
            let err = thrift_columns_to_batch(&s, vec![col]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            assert!(
                err.to_string().contains(&format!(
                    "column 0 (x) is {t} in the result schema but the server sent 32-bit integers"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn nulls_in_a_non_nullable_field_are_a_decode_error() {
        let s = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let col = TColumn::I64Val(TI64Column::new(vec![1, 2], vec![0b1]));
        let err = thrift_columns_to_batch(&s, vec![col]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
    }
}
