//! Message codecs of the Connect protocol: protojson (with errors that name
//! the field in the contract's words) and binary protobuf. Below the method
//! table: `rpc` decodes requests and encodes responses with these; nothing
//! here knows HTTP.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Json,
    Proto,
}

impl Codec {
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }

    /// From a Content-Type header (`; charset=...` ignored).
    pub fn from_content_type(ct: &str) -> Option<Codec> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json" => Some(Codec::Json),
            "application/proto" => Some(Codec::Proto),
            _ => None,
        }
    }

    /// From the `encoding` query parameter of a Connect GET.
    pub fn from_encoding(name: &str) -> Option<Codec> {
        match name {
            "json" => Some(Codec::Json),
            "proto" => Some(Codec::Proto),
            _ => None,
        }
    }
}

/// Decodes a request body. Errors name the field (`sessions[3].port`) and
/// say what it must be, in words of the contract: never a library's text,
/// which is jargon to a client author and can echo the value sent (a
/// password sent as a number, say).
pub fn decode<M: prost::Message + DeserializeOwned + Default>(
    codec: Codec,
    body: &[u8],
) -> Result<M> {
    match codec {
        Codec::Json => decode_json(body),
        Codec::Proto => M::decode(body).map_err(|e| proto_error(message_name::<M>(), &e)),
    }
}

fn decode_json<M: DeserializeOwned + Default>(body: &[u8]) -> Result<M> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(M::default());
    }
    // Syntax and duplicate keys first: pbjson refuses a repeated field, but
    // the null-dropping retry below goes through serde_json::Value, whose
    // maps keep the last of equal keys, and pbjson skips unknown fields
    // without looking. protojson calls a repeated field an error.
    if !flat_and_unique(body) {
        scan_json(body)?;
    }
    match serde_json::from_slice(body) {
        Ok(m) => Ok(m),
        // protojson: `null` means "not set", also on plain fields, which
        // pbjson refuses. Drop nulls and try once more, tracking the path
        // so an error can name the field (only on this slow path, so the
        // common case parses once).
        Err(_) => {
            let mut v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| not_json(&e))?;
            if !v.is_object() {
                return Err(Error::invalid(format!(
                    "The request body must be a JSON object holding the fields of {} by name.",
                    message_name::<M>()
                )));
            }
            strip_nulls(&mut v);
            serde_path_to_error::deserialize(v)
                .map_err(|e| schema::field_error(message_name::<M>(), e.path()))
        }
    }
}

/// The proto name of a generated message type (`CreateSessionRequest`).
fn message_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

fn not_json(e: &serde_json::Error) -> Error {
    let (line, column) = (e.line(), e.column());
    let how = match e.classify() {
        serde_json::error::Category::Eof => "it ends early, ",
        _ => "",
    };
    Error::invalid(format!(
        "The request body is not valid JSON ({how}at line {line} column {column})."
    ))
}

/// Removes object members whose value is null, at every depth.
fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The common request in one cheap pass: one flat object (no nested object
/// or array, no escape in any string) whose keys are distinct words of
/// ASCII letters and digits, so no key can be another's other spelling.
/// True says so; false says only "not sure", and `scan_json` then decides.
/// It does not vouch for the syntax of values: the decode that follows
/// refuses bad JSON with the same message the scan would give. The full
/// scan was ~3k instructions of every sticky resolve.
fn flat_and_unique(body: &[u8]) -> bool {
    const MAX_KEYS: usize = 16;
    let mut keys: [&[u8]; MAX_KEYS] = [&[]; MAX_KEYS];
    let mut n = 0;
    let ws = |i: &mut usize| {
        while body.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    // The end of a string starting at `i` (its opening quote), or None.
    let string_end = |i: usize| -> Option<usize> {
        let len = body[i + 1..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')?;
        (body[i + 1 + len] == b'"').then_some(i + 1 + len)
    };
    let mut i = 0;
    ws(&mut i);
    if body.get(i) != Some(&b'{') {
        return false;
    }
    i += 1;
    ws(&mut i);
    if body.get(i) == Some(&b'}') {
        i += 1;
        ws(&mut i);
        return i == body.len();
    }
    loop {
        if n == MAX_KEYS || body.get(i) != Some(&b'"') {
            return false;
        }
        let Some(end) = string_end(i) else {
            return false;
        };
        let key = &body[i + 1..end];
        if key.is_empty() || !key.iter().all(u8::is_ascii_alphanumeric) || keys[..n].contains(&key)
        {
            return false;
        }
        keys[n] = key;
        n += 1;
        i = end + 1;
        ws(&mut i);
        if body.get(i) != Some(&b':') {
            return false;
        }
        i += 1;
        ws(&mut i);
        match body.get(i) {
            Some(b'"') => match string_end(i) {
                Some(end) => i = end + 1,
                None => return false,
            },
            Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => {
                while body
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                {
                    i += 1;
                }
            }
            _ => return false,
        }
        ws(&mut i);
        match body.get(i) {
            Some(b',') => {
                i += 1;
                ws(&mut i);
            }
            Some(b'}') => {
                i += 1;
                ws(&mut i);
                return i == body.len();
            }
            _ => return false,
        }
    }
}

/// Checks that the body is one JSON value and that no object in it names a
/// key twice, counting `snake_case` and `lowerCamelCase` spellings of a
/// field as the same key (pbjson accepts both). Builds nothing.
fn scan_json(body: &[u8]) -> Result<()> {
    let mut scan = json_scan::Scan::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let outcome = serde::de::DeserializeSeed::deserialize(json_scan::Value(&mut scan), &mut de)
        .and_then(|()| de.end());
    match (outcome, scan.duplicate) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some((first, second))) => {
            let path = json_scan::show(&scan.path_reversed);
            let spelled = if first == second {
                String::new()
            } else {
                format!(" (as {first} and {second})")
            };
            Err(Error::invalid(format!(
                "{path} appears more than once in a JSON object{spelled}; send each field once."
            )))
        }
        (Err(e), None) => Err(not_json(&e)),
    }
}

mod json_scan {
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

    pub enum Seg {
        Key(String),
        Index(usize),
    }

    /// The duplicate the scan stopped at (first spelling, second spelling)
    /// and where: the path is filled in innermost first as the error
    /// unwinds, so a body without duplicates pays for no path at all.
    #[derive(Default)]
    pub struct Scan {
        pub path_reversed: Vec<Seg>,
        pub duplicate: Option<(String, String)>,
    }

    /// `sessions[3].port`.
    pub fn show(path_reversed: &[Seg]) -> String {
        let mut out = String::new();
        for seg in path_reversed.iter().rev() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// The lowerCamelCase form protoc gives a field name (`workspace_id` →
    /// `workspaceId`); a name without `_` is its own.
    fn json_name(key: Cow<'_, str>) -> Cow<'_, str> {
        if !key.contains('_') {
            return key;
        }
        let mut out = String::with_capacity(key.len());
        let mut upper = false;
        for c in key.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// Objects with more keys than this get a hash index; the API's own
    /// have a handful, searched in a line.
    const LINEAR: usize = 16;

    pub struct Value<'a>(pub &'a mut Scan);

    impl<'de> DeserializeSeed<'de> for Value<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Value<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            loop {
                match seq.next_element_seed(Value(&mut *self.0)) {
                    Ok(Some(())) => i += 1,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        if self.0.duplicate.is_some() {
                            self.0.path_reversed.push(Seg::Index(i));
                        }
                        return Err(e);
                    }
                }
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // (normalised key, spelling first seen)
            let mut seen: Vec<(Cow<'de, str>, Cow<'de, str>)> = Vec::new();
            let mut index: HashMap<Cow<'de, str>, usize> = HashMap::new();
            while let Some(key) = map.next_key_seed(Key)? {
                let norm = json_name(key.clone());
                let earlier = if seen.len() <= LINEAR {
                    seen.iter().position(|(n, _)| *n == norm)
                } else {
                    index.get(&norm).copied()
                };
                if let Some(i) = earlier {
                    let first = seen[i].1.to_string();
                    self.0.path_reversed.push(Seg::Key(first.clone()));
                    self.0.duplicate = Some((first, key.into_owned()));
                    return Err(de::Error::custom("duplicate key"));
                }
                if let Err(e) = map.next_value_seed(Value(&mut *self.0)) {
                    if self.0.duplicate.is_some() {
                        self.0.path_reversed.push(Seg::Key(key.into_owned()));
                    }
                    return Err(e);
                }
                if seen.len() == LINEAR {
                    index.extend(seen.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
                }
                if seen.len() >= LINEAR {
                    index.insert(norm.clone(), seen.len());
                }
                seen.push((norm, key));
            }
            Ok(())
        }
    }

    /// A key, borrowed from the body when it has no escapes.
    struct Key;

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
    }
}

/// A binary decode error in plain words, naming the field when prost knows
/// it. prost keeps its (message, field) stack private but prints it, so
/// it is read back from the text; the description is never passed on.
fn proto_error(message: &str, e: &prost::DecodeError) -> Error {
    let text = e.to_string();
    let mut rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or("");
    // Innermost first: "SessionSpec.port: BulkCreateSessionsRequest.sessions: ..."
    let mut fields = Vec::new();
    while let Some((head, tail)) = rest.split_once(": ") {
        let Some((msg, field)) = head.split_once('.') else {
            break;
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'#')
        };
        if !ident(msg) || !ident(field) {
            break;
        }
        fields.push(field.trim_start_matches("r#"));
        rest = tail;
    }
    fields.reverse();
    let what = if rest.starts_with("invalid string value") {
        "is not UTF-8 text"
    } else if rest.starts_with("invalid wire type") {
        "has the wrong protobuf type for its declared type"
    } else if rest.starts_with("buffer underflow")
        || rest.starts_with("delimited length exceeded")
        || rest.starts_with("length delimiter")
    {
        "ends early: a length runs past the end of the data"
    } else if rest.starts_with("invalid varint") {
        "holds a malformed number"
    } else if rest.starts_with("recursion limit") {
        "is nested too deeply"
    } else if rest.starts_with("invalid tag") || rest.starts_with("invalid key") {
        "holds an invalid field number"
    } else {
        "is malformed"
    };
    let subject = if fields.is_empty() {
        "it".to_owned()
    } else {
        format!("field {}", fields.join("."))
    };
    Error::invalid(format!(
        "The request body is not a valid protobuf {message}: {subject} {what}."
    ))
}

/// What each request field must be, from the descriptors build.rs wrote,
/// so a JSON decode error can be told in the contract's words.
mod schema {
    use std::sync::OnceLock;

    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    };
    use serde_path_to_error::{Path, Segment};

    use crate::error::Error;

    static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/proxies_descriptor.bin"));

    fn files() -> &'static [prost_types::FileDescriptorProto] {
        static SET: OnceLock<FileDescriptorSet> = OnceLock::new();
        &SET.get_or_init(|| FileDescriptorSet::decode(DESCRIPTORS).unwrap_or_default())
            .file
    }

    /// A message by full name (`.proxies.v1.SessionSpec`) or, with no
    /// leading dot, by its name in proxies.v1.
    fn message(name: &str) -> Option<&'static DescriptorProto> {
        let (package, short) = match name.strip_prefix('.') {
            Some(full) => full.rsplit_once('.')?,
            None => ("proxies.v1", name),
        };
        files()
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == short)
    }

    fn enumeration(name: &str) -> Option<&'static EnumDescriptorProto> {
        let (package, short) = name.strip_prefix('.')?.rsplit_once('.')?;
        files()
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| &f.enum_type)
            .find(|e| e.name() == short)
    }

    fn is_message(f: &FieldDescriptorProto) -> bool {
        f.r#type() == Type::Message
    }

    /// What a value of the field (one element, for a repeated field) must be.
    fn must_be(f: &FieldDescriptorProto) -> String {
        let whole = |range: &str| {
            format!("a whole number from {range} (a JSON number or a string of digits)")
        };
        match f.r#type() {
            Type::String => "a string".into(),
            Type::Bytes => "base64 (standard or URL-safe) in a string".into(),
            Type::Bool => "true or false".into(),
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => whole("-2147483648 to 2147483647"),
            Type::Uint32 | Type::Fixed32 => whole("0 to 4294967295"),
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
                whole("-9223372036854775808 to 9223372036854775807")
            }
            Type::Uint64 | Type::Fixed64 => whole("0 to 18446744073709551615"),
            Type::Double | Type::Float => "a number".into(),
            Type::Enum => match enumeration(f.type_name()) {
                Some(e) => format!(
                    "one of {} (or its number)",
                    e.value
                        .iter()
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "one of the names of its enum".into(),
            },
            Type::Message if f.type_name() == ".google.protobuf.Timestamp" => {
                "an RFC 3339 timestamp in a string, such as 2025-01-31T12:00:00Z".into()
            }
            Type::Message | Type::Group => "a JSON object".into(),
        }
    }

    /// The error for a value that did not fit the field at `path` of
    /// `root`; the value itself is never shown.
    pub fn field_error(root: &str, path: &Path) -> Error {
        let mut shown = String::new();
        let mut current = message(root);
        // The field the path ends in, and whether it ends inside its array.
        let mut last: Option<(&FieldDescriptorProto, bool)> = None;
        for seg in path.iter() {
            match seg {
                Segment::Map { key } => {
                    if !shown.is_empty() {
                        shown.push('.');
                    }
                    shown.push_str(key);
                    let f = current.and_then(|m| {
                        m.field
                            .iter()
                            .find(|f| f.json_name() == key || f.name() == key)
                    });
                    last = f.map(|f| (f, false));
                    current = f
                        .filter(|f| is_message(f) && f.label() != Label::Repeated)
                        .and_then(|f| message(f.type_name()));
                }
                Segment::Seq { index } => {
                    shown.push_str(&format!("[{index}]"));
                    last = last.map(|(f, _)| (f, true));
                    current = last
                        .filter(|(f, _)| is_message(f))
                        .and_then(|(f, _)| message(f.type_name()));
                }
                Segment::Enum { .. } | Segment::Unknown => {
                    last = None;
                    break;
                }
            }
        }
        let sentence = match last {
            Some((f, false)) if f.label() == Label::Repeated => {
                let each = must_be(f);
                format!("{shown} must be a JSON array, each element {each}.")
            }
            Some((f, _)) => format!("{shown} must be {}.", must_be(f)),
            None if shown.is_empty() => {
                format!("The request body does not match the fields of {root}.")
            }
            None => format!("{shown} has a value of the wrong type or format."),
        };
        Error::invalid(sentence)
    }
}

pub fn encode<M: prost::Message + Serialize + 'static>(codec: Codec, msg: &M) -> Result<Vec<u8>> {
    match codec {
        Codec::Json => {
            // The hot path's answer has an encoder of its own, tested
            // byte-identical to this generic one (fastjson.rs).
            let any: &dyn std::any::Any = msg;
            if let Some(r) = any.downcast_ref::<crate::pb::v1::ResolveProxyResponse>() {
                return Ok(crate::fastjson::resolve_proxy(r));
            }
            serde_json::to_vec(msg).map_err(Error::internal)
        }
        Codec::Proto => Ok(msg.encode_to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pb::v1::CreateWorkspaceRequest as Probe;

    #[test]
    fn duplicate_keys_are_found_at_any_depth_in_either_spelling() {
        let dup = |body: &str| scan_json(body.as_bytes()).unwrap_err().message;
        assert!(dup(r#"{"a":1,"a":1}"#).starts_with("a appears more than once"));
        assert!(dup(r#"{"x":[{},{"page_size":1,"pageSize":2}]}"#)
            .starts_with("x[1].page_size appears more than once"));
        assert!(dup(r#"{"x":{"y":{"z":null,"z":null}}}"#).starts_with("x.y.z "));
        for ok in [
            r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}"#,
            r#"{"ab":1,"aB":2}"#,
            r#"[1,"x",null,true,{}]"#,
        ] {
            assert!(scan_json(ok.as_bytes()).is_ok(), "{ok}");
        }
        // Past the linear search: the hash index finds them too.
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!("{{{}}}", many.join(","));
        assert!(scan_json(body.as_bytes()).is_ok());
        for again in ["k3", "k39", "k_39", "k16", "k17"] {
            let body = format!("{{{},\"{again}\":0}}", many.join(","));
            assert!(dup(&body).contains("appears more than once"), "{again}");
        }
        let e = scan_json(b"{\"a\":1} x").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn the_flat_fast_path_vouches_only_for_flat_objects_with_distinct_word_keys() {
        for sure in [
            r#"{"workspaceId":"AZ/+=","poolId":"x","accountName":"bot 1"}"#,
            " { \"a\" : 1 , \"b\" : -2.5e3 , \"c\" : true , \"d\" : null } \n",
            "{}",
        ] {
            assert!(flat_and_unique(sure.as_bytes()), "{sure}");
        }
        for unsure in [
            r#"{"a":1,"a":2}"#,
            r#"{"pool_id":"x","poolId":"y"}"#,
            r#"{"a":"x\"","a":1}"#,
            r#"{"a\u0062":1,"ab":2}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":1} x"#,
            r#"{"a":1,}"#,
            r#"{"a":1"#,
            r#"{"a""#,
            r#"[1]"#,
            "",
        ] {
            assert!(!flat_and_unique(unsure.as_bytes()), "{unsure}");
        }
        // Past its key limit it leaves the decision to the full scan.
        let many: Vec<String> = (0..17).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(!flat_and_unique(
            format!("{{{}}}", many.join(",")).as_bytes()
        ));
    }

    #[test]
    fn decode_errors_do_not_pass_library_text_on() {
        let e = decode::<Probe>(Codec::Json, br#"{"name": 123456}"#).unwrap_err();
        assert_eq!(e.message, "name must be a string.");
        let e = decode::<Probe>(Codec::Json, br#"{"name": "a", "name": "a"}"#).unwrap_err();
        assert!(e.message.starts_with("name appears more than once"));
        let e = decode::<Probe>(Codec::Proto, &[0x0a, 0x01, 0xff]).unwrap_err();
        assert_eq!(
            e.message,
            "The request body is not a valid protobuf CreateWorkspaceRequest: field name is not UTF-8 text."
        );
        let e = decode::<Probe>(Codec::Proto, &[0x0a, 0x05, b'a']).unwrap_err();
        assert!(e.message.contains("ends early"), "{}", e.message);
    }
}
