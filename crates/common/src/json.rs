//! JSON objects only, for strict request parsing (see `http::StrictJson`). serde's derived `Deserialize` for a struct also accepts a JSON array of
//! its fields in declaration order (`["Standup", 10]`), which strict parsing must not: a body
//! or a nested object the API documents as an object is refused (400) in any other shape.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A `T` that was written as a JSON object.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(JsonObject)
    }
}

/// For `#[serde(deserialize_with = "object")]` on a nested struct field.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// For an optional nested struct field (`null` and absence are `None`).
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<JsonObject<T>>::deserialize(deserializer).map(|o| o.map(|JsonObject(t)| t))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "optional_object")]
        inner: Option<Inner>,
    }

    #[test]
    fn objects_parse_and_arrays_do_not() {
        let JsonObject(outer) =
            serde_json::from_str::<JsonObject<Outer>>(r#"{"inner": {"a": 1}}"#).unwrap();
        assert_eq!(outer.inner, Some(Inner { a: 1 }));
        assert!(serde_json::from_str::<JsonObject<Outer>>(r#"[{"a": 1}]"#).is_err());
        assert!(serde_json::from_str::<JsonObject<Outer>>(r#"{"inner": [1]}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"inner": [1]}"#).is_err());
    }

    #[test]
    fn a_missing_or_null_optional_object_is_none() {
        let JsonObject(outer) = serde_json::from_str::<JsonObject<Outer>>("{}").unwrap();
        assert_eq!(outer.inner, None);
        let JsonObject(outer) =
            serde_json::from_str::<JsonObject<Outer>>(r#"{"inner": null}"#).unwrap();
        assert_eq!(outer.inner, None);
    }

    #[test]
    fn unknown_fields_are_still_refused_inside_an_object() {
        let error = serde_json::from_str::<JsonObject<Inner>>(r#"{"a": 1, "b": 2}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field `b`"));
    }
}
