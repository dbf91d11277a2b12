//! What the gateway can check without Python: base64 that decodes to a pickle, source that
//! defines its entrypoint, arguments of the right JSON shape.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::error::ApiError;

/// Standard base64, padding optional; whitespace is stripped before decoding because the
/// original clients send MIME base64 (`codecs.encode(..., "base64")`) with a newline every 76.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const MAX_NAME: usize = 200;

/// Checks that `value` is base64 of a pickle (protocol 2 or later, which starts with the PROTO
/// opcode 0x80 and the protocol number) and returns it without whitespace.
pub fn pickle_payload(field: &str, value: &str) -> Result<String, ApiError> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(ApiError::bad(format!("`{field}` is empty")));
    }
    let bytes = B64
        .decode(&compact)
        .map_err(|e| ApiError::bad(format!("`{field}` is not valid base64: {e}")))?;
    match bytes.as_slice() {
        [0x80, proto, ..] if (2..=5).contains(proto) => Ok(compact),
        _ => Err(ApiError::bad(format!(
            "`{field}` is base64 but not of a pickle (expected a dill.dumps() result, pickle protocol 2-5)"
        ))),
    }
}

pub fn function_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad("`name` is empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::bad(format!(
            "`name` is longer than {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

/// Source must be non-empty and define `entrypoint` at top level as `def NAME`, `async def
/// NAME`, `class NAME` or `NAME = ...`. Python would tell more, but the gateway does not run it;
/// this catches the common mistakes (a typo in the name, the wrong file) at registration.
pub fn source_function(source: &str, entrypoint: Option<&str>) -> Result<String, ApiError> {
    if source.trim().is_empty() {
        return Err(ApiError::bad("`source` is empty"));
    }
    let Some(entry) = entrypoint.map(str::trim).filter(|e| !e.is_empty()) else {
        return Err(ApiError::bad(
            "`entrypoint` is required with `source`: the name of the function to call",
        ));
    };
    let identifier = entry
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && entry.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !identifier {
        return Err(ApiError::bad(format!(
            "`entrypoint` {entry:?} is not a Python identifier"
        )));
    }
    if !defines(source, entry) {
        return Err(ApiError::bad(format!(
            "the source does not define `{entry}` (expected `def {entry}(...)` or `{entry} = ...` at top level)"
        )));
    }
    Ok(entry.to_owned())
}

fn defines(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        let rest = ["async def ", "def ", "class "]
            .iter()
            .find_map(|kw| line.strip_prefix(kw))
            .map(str::trim_start);
        match rest {
            Some(rest) => rest
                .strip_prefix(name)
                .is_some_and(|after| after.starts_with(['(', ':', ' '])),
            None => line.strip_prefix(name).is_some_and(|after| {
                let after = after.trim_start();
                after.starts_with('=') && !after.starts_with("==")
                    || after.starts_with(':') && after.contains('=')
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_base64_of_a_pickle_is_accepted_and_compacted() {
        // pickle.dumps(42, protocol=4) == b'\x80\x04K*.'
        let p = pickle_payload("payload", "gARLKi4=\n").unwrap();
        assert_eq!(p, "gARLKi4=");
    }

    #[test]
    fn non_base64_and_non_pickles_are_refused() {
        assert!(pickle_payload("payload", "payload!").is_err());
        // base64 of "hello"
        let e = pickle_payload("payload", "aGVsbG8=").unwrap_err();
        assert!(e.to_string().contains("not of a pickle"));
    }

    #[test]
    fn entrypoints_are_found_at_top_level_only() {
        let src = "import math\n\ndef add(a, b):\n    def inner(): pass\n    return a + b\nsq = lambda x: x * x\n";
        assert!(source_function(src, Some("add")).is_ok());
        assert!(source_function(src, Some("sq")).is_ok());
        assert!(source_function(src, Some("inner")).is_err());
        assert!(source_function(src, Some("ad")).is_err());
        assert!(source_function("x == 1\n", Some("x")).is_err());
        assert!(source_function("   ", Some("x")).is_err());
        assert!(source_function("def f(): pass", None).is_err());
        assert!(source_function("def f(): pass", Some("f-1")).is_err());
    }
}
