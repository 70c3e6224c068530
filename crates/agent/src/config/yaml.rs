//! The hardened YAML reader under the config file: text in, a tree of [`Node`]s out, each node
//! knowing the line and column it came from.
//!
//! This module owns the limits ([`super::MAX_YAML_DEPTH`] and friends) handed to serde-saphyr's
//! budget, so deep nesting, alias bombs and oversized documents are refused while parsing, and
//! the translation of serde-saphyr's errors into a message plus a location. It knows nothing
//! about the config's keys (that is `schema.rs`) and does no IO.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as YamlLibError, Location, Spanned};

use super::{MAX_ALIAS_REPLAY_EVENTS, MAX_YAML_DEPTH, MAX_YAML_NODES};

/// A place in a YAML text: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub line: u64,
    pub column: u64,
}

impl Loc {
    /// The start of the text, for errors about the document as a whole.
    pub const START: Loc = Loc { line: 1, column: 1 };

    fn from_location(l: Location) -> Loc {
        if l.line() == 0 {
            Loc::START
        } else {
            Loc {
                line: l.line(),
                column: l.column().max(1),
            }
        }
    }
}

/// One YAML node: where it is used and what it holds.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Where the node appears (for an alias: where the alias is used).
    pub loc: Loc,
    /// For a plain scalar read as a number or boolean: its source text (`0x1F`, `1.50`), so a
    /// string-valued key gets what was written rather than a re-formatted number.
    pub raw: Option<String>,
    pub value: Value,
    /// Byte range of the defining text of a number or boolean, until `attach_raw` reads it.
    source: Option<Range<usize>>,
}

/// The value of a [`Node`], typed by YAML 1.2's core schema (with `strict_booleans`, so only
/// `true`/`false` are booleans; `yes`, `on`, `n` stay text).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A refused YAML text: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub loc: Loc,
    pub message: String,
}

/// Parses one YAML document into a [`Node`] tree under Warren's limits. An empty text (or one
/// holding only comments) is a `Null` node at 1:1.
pub(crate) fn parse(text: &str) -> Result<Node, YamlError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_YAML_DEPTH,
            flow_nesting_limit: MAX_YAML_DEPTH,
            max_nodes: MAX_YAML_NODES,
            max_events: MAX_YAML_NODES * 4,
            max_documents: 1,
            max_aliases: MAX_YAML_NODES / 16,
            max_anchors: MAX_YAML_NODES / 16,
            max_merge_keys: MAX_YAML_NODES / 16,
            max_recorded_anchor_events: MAX_ALIAS_REPLAY_EVENTS,
            max_total_scalar_bytes: 4 * super::MAX_CONFIG_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAY_EVENTS,
            max_replay_stack_depth: MAX_YAML_DEPTH,
        },
        strict_booleans: true,
        reject_unsupported_tags: true,
        leading_zero_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    let root: Spanned<Value> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| translate(&e))?;
    let mut node = Node::from(root);
    attach_raw(&mut node, text);
    Ok(node)
}

impl From<Spanned<Value>> for Node {
    fn from(s: Spanned<Value>) -> Node {
        let span = s.defined.span();
        // Remember where the defining text is; `attach_raw` reads it once the whole tree is in.
        let source = match (&s.value, span.byte_offset(), span.byte_len()) {
            (Value::Bool(_) | Value::Int(_) | Value::Float(_), Some(at), Some(len)) => {
                let at = usize::try_from(at).ok();
                let end = at
                    .zip(usize::try_from(len).ok())
                    .and_then(|(a, l)| a.checked_add(l));
                at.zip(end).map(|(a, e)| a..e)
            }
            _ => None,
        };
        Node {
            loc: Loc::from_location(s.referenced),
            raw: None,
            value: s.value,
            source,
        }
    }
}

/// Reads the source text of each number and boolean noted by `From<Spanned<Value>>`, keeping
/// it only when it looks like a plain scalar.
fn attach_raw(node: &mut Node, text: &str) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| attach_raw(n, text)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            attach_raw(k, text);
            attach_raw(v, text);
        }),
        _ => {
            node.raw = node
                .source
                .take()
                .and_then(|r| text.get(r))
                .map(str::trim)
                .filter(|s| {
                    !s.is_empty()
                        && !s.contains(['\n', '\r', '#'])
                        && !s.starts_with(['!', '&', '*', '{', '[', '"', '\'', '|', '>'])
                })
                .map(str::to_owned);
        }
    }
}

impl Node {
    /// The node's scalar text: strings as they are, numbers and booleans as written. `None` for
    /// null, lists and mappings.
    pub fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(self.raw.clone().unwrap_or_else(|| b.to_string())),
            Value::Int(i) => Some(self.raw.clone().unwrap_or_else(|| i.to_string())),
            Value::Float(f) => Some(self.raw.clone().unwrap_or_else(|| f.to_string())),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Whether the node asks for nothing: null, `""`, `[]` or `{}`.
    pub fn is_empty(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Str(s) => s.is_empty(),
            Value::Seq(v) => v.is_empty(),
            Value::Map(v) => v.is_empty(),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => false,
        }
    }

    /// What the node is, for "expected …, got …" messages: the text of a short scalar, else
    /// its kind.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".to_owned(),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
            _ => match self.text() {
                Some(t) if t.chars().count() <= 40 && !t.contains(['\n', '`']) => {
                    format!("`{}`", t.escape_debug())
                }
                Some(_) if matches!(self.value, Value::Str(_)) => "a long string".to_owned(),
                _ => "a value".to_owned(),
            },
        }
    }

    /// The node as JSON (for traffic policies). Mapping keys must be scalars.
    pub fn to_json(&self) -> Result<serde_json::Value, (Loc, String)> {
        use serde_json::Value as J;
        Ok(match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    return Err((self.loc, format!("number {i} is out of range")));
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .ok_or_else(|| (self.loc, format!("number {f} is not finite")))?,
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => {
                J::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k
                        .text()
                        .ok_or_else(|| (k.loc, "mapping keys must be text".to_owned()))?;
                    map.insert(key, v.to_json()?);
                }
                J::Object(map)
            }
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(Node::from(item));
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push((Node::from(key), Node::from(value)));
        }
        Ok(Value::Map(entries))
    }
}

/// serde-saphyr's error as a message (without its own location suffix) and a location.
fn translate(e: &YamlLibError) -> YamlError {
    let loc = e.location().map_or(Loc::START, Loc::from_location);
    let message = match inner(e) {
        YamlLibError::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => format!("nested deeper than {MAX_YAML_DEPTH} levels"),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
                format!("more than {MAX_YAML_NODES} values")
            }
            BudgetBreach::Documents { .. } => {
                "more than one YAML document (`---`); a config file holds one".to_owned()
            }
            BudgetBreach::ScalarBytes { .. } => "too much text".to_owned(),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. } => {
                "too many anchors and aliases, or aliases expanding to too much (an alias bomb?)"
                    .to_owned()
            }
            BudgetBreach::MergeKeys { .. } => "too many merge keys (`<<`)".to_owned(),
            _ => "document too large or too complex".to_owned(),
        },
        YamlLibError::AliasReplayLimitExceeded { .. }
        | YamlLibError::AliasExpansionLimitExceeded { .. }
        | YamlLibError::AliasReplayStackDepthExceeded { .. }
        | YamlLibError::AliasReplayCounterOverflow { .. } => {
            format!("aliases expand to more than {MAX_ALIAS_REPLAY_EVENTS} values (an alias bomb?)")
        }
        YamlLibError::MultipleDocuments { .. } => {
            "more than one YAML document (`---`); a config file holds one".to_owned()
        }
        other => {
            let formatter = serde_saphyr::UserMessageFormatter.with_localizer(&NoLocation);
            let text = other.render_with_options(serde_saphyr::render_options! {
                formatter: &formatter,
                snippets: serde_saphyr::SnippetMode::Off,
            });
            // The parser's recursion guard fires before the budget on very deep flow nesting.
            if text.contains("recursion limit") {
                format!("nested deeper than {MAX_YAML_DEPTH} levels")
            } else {
                text
            }
        }
    };
    YamlError {
        loc,
        message: format!("invalid YAML: {message}"),
    }
}

/// The innermost error, past snippet and alias wrappers.
fn inner(e: &YamlLibError) -> &YamlLibError {
    let mut e = e.without_snippet();
    // Bounded: each step unwraps one level of a finite error value.
    while let YamlLibError::AliasError { error, .. } = e {
        e = error.without_snippet();
    }
    e
}

/// A localizer that leaves locations out: [`YamlError`] carries them separately.
struct NoLocation;

impl serde_saphyr::Localizer for NoLocation {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _loc: Location) -> Cow<'a, str> {
        base
    }

    fn alias_defined_at(&self, _defined: Location) -> String {
        String::new()
    }

    fn alias_used_at(&self, _used: Location) -> String {
        String::new()
    }
}
