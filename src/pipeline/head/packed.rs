//! Rows of numbers in a head file. A head writes each row of its templates and of its word
//! check's embeddings as one base64 string of the row's little-endian f32 bytes: exact, and
//! about half the size of the same numbers in JSON (an `anyone` head's 10 MB become 5). It
//! reads either form, so heads written with arrays (before 2026-11-30), still load.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// One row as read: an array or base64.
struct Row(Vec<f32>);

/// One row as written: base64 of its little-endian f32 bytes.
struct Packed<'a>(&'a [f32]);

impl Serialize for Packed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(crate::util::f32_le_bytes(self.0)))
    }
}

/// One word's rows as written.
struct PackedRows<'a>(&'a [Vec<f32>]);

impl Serialize for PackedRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| Packed(r)))
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Row;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of numbers or a base64 string of little-endian f32")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        let mut row = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<f32>()? {
            row.push(v);
        }
        Ok(Row(row))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Row, E> {
        let bytes = STANDARD
            .decode(v)
            .map_err(|e| E::custom(format!("a row is not valid base64 ({e})")))?;
        if bytes.len() % 4 != 0 {
            return Err(E::custom(format!(
                "a row of {} bytes is not whole f32 values",
                bytes.len()
            )));
        }
        Ok(Row(crate::util::f32s_from_le_bytes(&bytes)))
    }
}

/// `#[serde(with = "packed::rows")]` for `Vec<Vec<f32>>`.
pub mod rows {
    use super::{PackedRows, Row};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
        PackedRows(v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
        Ok(Vec::<Row>::deserialize(d)?
            .into_iter()
            .map(|r| r.0)
            .collect())
    }
}

/// `#[serde(with = "packed::groups")]` for `Vec<Vec<Vec<f32>>>` (per word, its rows).
pub mod groups {
    use super::{PackedRows, Row};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<Vec<f32>>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|g| PackedRows(g)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<Vec<f32>>>, D::Error> {
        let groups = Vec::<Vec<Row>>::deserialize(d)?;
        Ok(groups
            .into_iter()
            .map(|g| g.into_iter().map(|r| r.0).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "groups")]
        g: Vec<Vec<Vec<f32>>>,
        #[serde(with = "rows")]
        r: Vec<Vec<f32>>,
    }

    #[test]
    fn rows_are_written_as_base64_and_read_back_exactly_in_either_form() {
        let t = T {
            g: vec![
                vec![vec![0.1, -3.5e-7, f32::MAX], vec![]],
                vec![vec![1.0 / 3.0]],
            ],
            r: vec![vec![2.5, -0.0]],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("0.1"), "rows are not packed: {json}");
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(back.g, t.g);
        assert_eq!(back.r[0][1].to_bits(), (-0.0f32).to_bits());
        let old: T = serde_json::from_str(r#"{"g":[[[0.1,2]]],"r":[[1.5]]}"#).unwrap();
        assert_eq!(old.g, vec![vec![vec![0.1, 2.0]]]);
        assert_eq!(old.r, vec![vec![1.5]]);
    }

    #[test]
    fn a_bad_row_is_refused_with_its_reason() {
        let e = serde_json::from_str::<T>(r#"{"g":[["AAA"]],"r":[]}"#).unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
        let e = serde_json::from_str::<T>(r#"{"g":[["AAAAAAA="]],"r":[]}"#).unwrap_err();
        assert!(e.to_string().contains("not whole f32"), "{e}");
        let e = serde_json::from_str::<T>(r#"{"g":[[{"a":1}]],"r":[]}"#).unwrap_err();
        assert!(
            e.to_string().contains("array of numbers or a base64"),
            "{e}"
        );
    }
}
