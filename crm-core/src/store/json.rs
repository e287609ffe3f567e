//! JSON encoding for the stores: byte for byte what `serde_json::to_vec`
//! writes, faster for values that serialise through `Display`.
//!
//! Such values (`Serializer::collect_str`: chrono's dates and times, which
//! every event, lot and order carries) reach `serde_json` as a stream of
//! tiny writes — chrono formats a date a character at a time, and
//! `serde_json` runs each character through its escaping writer on its own
//! (an encode, a scan and a buffer write per character). Dates were 9.4 %
//! of the CPU samples of a CDNOW replay into SQLite. [`Buffered`] formats
//! the value into a stack buffer first, storing ASCII characters directly
//! ([`Text`]), and hands it to `serde_json` as one string: 4.9 %. JSON
//! escaping maps each character on its own, so escaping the whole string
//! writes the same bytes as escaping its pieces in turn; everything else is
//! passed through unchanged (the tests compare with `serde_json` byte for
//! byte).

use std::fmt::{self, Display, Write as _};

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// `serde_json::to_vec(value)`, byte for byte.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    value.serialize(Buffered(&mut serde_json::Serializer::new(&mut out)))?;
    Ok(out)
}

/// `serde_json::to_string(value)`, byte for byte.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    String::from_utf8(to_vec(value)?).map_err(ser::Error::custom)
}

/// A serializer that formats `collect_str` values in one piece and
/// otherwise forwards to the serializer it wraps (at every depth: nested
/// values are wrapped again by [`Wrap`]).
struct Buffered<S>(S);

/// A value whose serialisation goes through [`Buffered`].
struct Wrap<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Buffered(serializer))
    }
}

/// Text formatted on the stack (dates are ~30 bytes), spilling to the heap
/// when longer.
struct Text {
    buf: [u8; 64],
    len: usize,
    spill: String,
}

impl Text {
    fn new() -> Self {
        Text { buf: [0; 64], len: 0, spill: String::new() }
    }

    fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        if self.spill.is_empty() {
            std::str::from_utf8(&self.buf[..self.len])
        } else {
            Ok(&self.spill)
        }
    }
}

impl fmt::Write for Text {
    /// chrono writes dates mostly a character at a time: an ASCII character
    /// is one store, not an encode and a copy.
    fn write_char(&mut self, c: char) -> fmt::Result {
        match u8::try_from(c) {
            Ok(b) if b.is_ascii() && self.spill.is_empty() && self.len < self.buf.len() => {
                self.buf[self.len] = b;
                self.len += 1;
                Ok(())
            }
            _ => self.write_str(c.encode_utf8(&mut [0; 4])),
        }
    }

    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.spill.is_empty() && self.len + s.len() <= self.buf.len() {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            if self.spill.is_empty() {
                // Whole `&str` pieces were copied in, so this is valid UTF-8.
                self.spill.push_str(std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?);
            }
            self.spill.push_str(s);
        }
        Ok(())
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        })*
    };
}

impl<S: Serializer> Serializer for Buffered<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Buffered<S::SerializeSeq>;
    type SerializeTuple = Buffered<S::SerializeTuple>;
    type SerializeTupleStruct = Buffered<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Buffered<S::SerializeTupleVariant>;
    type SerializeMap = Buffered<S::SerializeMap>;
    type SerializeStruct = Buffered<S::SerializeStruct>;
    type SerializeStructVariant = Buffered<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrap(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrap(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, &Wrap(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Buffered)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Buffered)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Buffered)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(Buffered)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Buffered)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Buffered)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(Buffered)
    }

    /// The one change: format first, then write one string.
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let mut text = Text::new();
        write!(text, "{value}").map_err(ser::Error::custom)?;
        self.0.serialize_str(text.as_str().map_err(ser::Error::custom)?)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The sequence-like compound serialisers: each element through [`Wrap`].
macro_rules! forward_elements {
    ($($compound:ident :: $method:ident),* $(,)?) => {$(
        impl<S: $compound> $compound for Buffered<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.0.$method(&Wrap(value))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    )*};
}

forward_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl<S: SerializeMap> SerializeMap for Buffered<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Wrap(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Wrap(value))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(&mut self, k: &K, v: &V) -> Result<(), S::Error> {
        self.0.serialize_entry(&Wrap(k), &Wrap(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// The struct-like compound serialisers: each field through [`Wrap`].
macro_rules! forward_fields {
    ($($compound:ident),* $(,)?) => {$(
        impl<S: $compound> $compound for Buffered<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
                self.0.serialize_field(key, &Wrap(value))
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                self.0.skip_field(key)
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    )*};
}

forward_fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use serde::Serialize;

    use super::to_string;

    /// `Display` with any text, in pieces of any size (escapes, non-ASCII,
    /// longer than the stack buffer).
    #[derive(Debug, Clone)]
    struct Pieces(Vec<String>);

    impl std::fmt::Display for Pieces {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.iter().try_for_each(|p| f.write_str(p))
        }
    }

    impl Serialize for Pieces {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    #[derive(Debug, Clone, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        Dated { at: DateTime<Utc>, amount: Decimal },
        Nested { inner: Box<Sample> },
        Empty,
    }

    #[derive(Debug, Clone, Serialize)]
    enum External {
        Newtype(DateTime<Utc>),
        Tuple(NaiveDate, i64),
        Unit,
    }

    #[derive(Debug, Clone, Serialize)]
    struct Sample {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
        days: BTreeMap<NaiveDate, i64>,
        by_time: BTreeMap<DateTime<Utc>, Vec<Decimal>>,
        text: Pieces,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        tagged: Vec<Tagged>,
        external: Vec<External>,
        float: f64,
        big: u128,
        pair: (char, Option<()>),
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // Years -262,000..262,000 and any nanosecond, leap seconds included.
        (-8_000_000_000_000i64..8_000_000_000_000, 0u32..2_000_000_000)
            .prop_filter_map("in range", |(s, ns)| Utc.timestamp_opt(s, ns).single())
    }

    fn sample(depth: u32) -> BoxedStrategy<Sample> {
        let nested = if depth == 0 {
            Just(Vec::new()).boxed()
        } else {
            prop::collection::vec(sample(depth - 1).prop_map(|s| Tagged::Nested { inner: Box::new(s) }), 0..2).boxed()
        };
        (
            (instant(), prop::option::of(instant()), prop::collection::btree_map(instant(), any::<i64>(), 0..3)),
            (prop::collection::vec(".{0,40}", 0..4), ".{0,20}", any::<Option<u8>>()),
            (instant(), any::<i64>(), 0u32..28, nested),
            (any::<f64>(), any::<u128>(), any::<char>(), any::<bool>()),
        )
            .prop_map(
                |((at, maybe, times), (pieces, name, skipped), (t, cents, scale, mut tagged), (float, big, c, b))| {
                    tagged.push(Tagged::Dated { at: t, amount: Decimal::new(cents, scale) });
                    tagged.push(Tagged::Empty);
                    Sample {
                        at,
                        maybe,
                        days: times.iter().map(|(t, v)| (t.date_naive(), *v)).collect(),
                        by_time: times.keys().map(|t| (*t, vec![Decimal::new(cents, scale)])).collect(),
                        text: Pieces(pieces),
                        name,
                        skipped,
                        tagged,
                        external: vec![External::Newtype(at), External::Tuple(at.date_naive(), cents), External::Unit],
                        float,
                        big,
                        pair: (c, b.then_some(())),
                    }
                },
            )
            .boxed()
    }

    proptest! {
        /// Byte for byte what `serde_json` writes, through every kind of
        /// serde value (maps with date keys, internally tagged and external
        /// enums, options, skipped fields, escapes in `Display` output).
        #[test]
        fn writes_what_serde_json_writes(s in sample(2)) {
            prop_assert_eq!(to_string(&s).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    /// And for what the stores write: the members, events and receipts of
    /// an engine run through every kind of command the demo scenarios use.
    #[test]
    fn writes_what_serde_json_writes_for_stored_values() {
        use crate::{Engine, MemoryStore, Order, Program, Store};
        let e = Engine::new(Program::default_demo(), MemoryStore::new());
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        for i in 0..20i64 {
            let at = t0 + chrono::Duration::days(i * 17) + chrono::Duration::nanoseconds(i * 1_234_567);
            let o = Order::paid(format!("o-{i}"), format!("m{}", i % 3), at, Decimal::new(1_999 * i + 1, 2));
            e.record_order(o, at).unwrap();
        }
        e.run_due(t0 + chrono::Duration::days(800)).unwrap();
        let mut n = 0;
        e.store()
            .scan(&mut |v| {
                assert_eq!(to_string(&v.state).unwrap(), serde_json::to_string(&v.state).unwrap());
                for ev in e.store().events(&v.state.id)? {
                    assert_eq!(to_string(&ev).unwrap(), serde_json::to_string(&ev).unwrap());
                }
                n += 1;
                Ok(())
            })
            .unwrap();
        e.store()
            .receipts(&mut |r| {
                assert_eq!(to_string(&r).unwrap(), serde_json::to_string(&r).unwrap());
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 3);
    }
}
