//! Lenient serde helpers shared by the message structs: nulls read as defaults, empty strings as
//! absent, base64 byte strings decoded. Private to the crate; nothing here touches the wire format
//! on output (base64 is decoded with the standard alphabet, as both SDKs write `[]byte`/`Vec<u8>`).

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// `null` (or a missing key, with `#[serde(default)]`) reads as `T::default()`.
pub(crate) fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// `null`, missing and `""` all read as `None`.
pub(crate) fn non_empty<'de, D>(de: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(de)?.filter(|s| !s.is_empty()))
}

/// Accepts a JSON string, number or bool and yields its text (`null` = `""`). Used for fields that
/// must be strings on output but that a sloppy peer might send as a number (`EdgeType`).
pub(crate) fn stringish<'de, D>(de: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    use serde::de::Error;
    match serde_json::Value::deserialize(de)? {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(D::Error::custom(format!("expected a string, got {other}"))),
    }
}

/// The base64 engine for byte strings: standard alphabet, padding optional on input.
fn engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Decodes base64 text into bytes.
pub(crate) fn decode_b64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    engine().decode(text.trim())
}

/// `Vec<u8>` from a base64 string; `null`/missing = empty.
pub(crate) fn b64<'de, D>(de: D) -> Result<Vec<u8>, D::Error>
where
    D: Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<String>::deserialize(de)? {
        None => Ok(Vec::new()),
        Some(text) => decode_b64(&text).map_err(D::Error::custom),
    }
}

/// `Option<Vec<u8>>` from a base64 string; `null`, missing and `""` = `None`.
pub(crate) fn opt_b64<'de, D>(de: D) -> Result<Option<Vec<u8>>, D::Error>
where
    D: Deserializer<'de>,
{
    use serde::de::Error;
    match non_empty(de)? {
        None => Ok(None),
        Some(text) => decode_b64(&text).map(Some).map_err(D::Error::custom),
    }
}

/// Serde `skip_serializing_if` helper for `0`.
pub(crate) fn is_zero(value: &u32) -> bool {
    *value == 0
}
