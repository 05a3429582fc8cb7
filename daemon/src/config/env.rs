//! The `FERRY_*` overlay, derived from the configuration types rather than
//! kept as a second list of keys: which keys exist comes from each struct's
//! derived `Deserialize` (the field list `deny_unknown_fields` checks), and
//! how a value's text is read comes from the key's default, serialised to
//! TOML (a boolean, an integer, a list, or text). A key the defaults leave
//! unset (a path, an address, a secret) is text, and an empty value unsets it.
//!
//! Names: `FERRY_<KEY>` for a top-level key, `FERRY_<SECTION>_<KEY>` for a
//! key of a section. Tables inside a section (`[caps.accounts.<id>]`) are
//! file-only. Each variable is applied and checked on its own, so an error
//! names the variable. Never reads the process environment itself, and
//! never serialises a secret (secret fields skip serialisation).

use std::cell::Cell;

use anyhow::{Context, bail};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use toml::{Table, Value};

use super::{CLIENT_VARIABLES, Config};

/// Applies the `FERRY_*` variables of `env` to `tree` (the file's settings),
/// leaving `tree` a valid configuration after each one.
pub(super) fn overlay(
    tree: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let shape = match Value::try_from(Config::default()).context("default configuration")? {
        Value::Table(table) => table,
        _ => bail!("the default configuration is not a table"),
    };
    let top_keys = struct_fields::<Config>(&[]);
    let sections: Vec<&str> = top_keys
        .iter()
        .copied()
        .filter(|key| shape.get(*key).is_some_and(Value::is_table))
        .collect();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("FERRY_") else {
            continue;
        };
        if CLIENT_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let (section, key) = sections
            .iter()
            .find_map(|s| {
                rest.strip_prefix(&format!("{s}_"))
                    .map(|key| (Some(*s), key.to_string()))
            })
            .unwrap_or((None, rest.clone()));
        set(tree, &shape, section, &key, &value)
            .with_context(|| format!("environment variable {name}"))?;
    }
    Ok(())
}

/// Sets one key from its text, trying each reading the key's type allows.
fn set(
    tree: &mut Table,
    shape: &Table,
    section: Option<&str>,
    key: &str,
    value: &str,
) -> anyhow::Result<()> {
    let path = section.map_or_else(|| key.to_string(), |s| format!("{s}.{key}"));
    let keys = struct_fields::<Config>(section.as_slice());
    if !keys.contains(&key) {
        bail!("unknown setting {path}");
    }
    let default = match section {
        Some(s) => shape.get(s).and_then(|t| t.get(key)),
        None => shape.get(key),
    };
    let trimmed = value.trim();
    let readings: Vec<Option<Value>> = match default {
        Some(Value::Boolean(_)) => vec![Some(Value::Boolean(parse(&path, value)?))],
        Some(Value::Integer(_)) => vec![Some(Value::Integer(parse(&path, value)?))],
        Some(Value::Float(_)) => vec![Some(Value::Float(parse(&path, value)?))],
        Some(Value::Array(_)) => vec![Some(Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ))],
        // A section itself is not a setting; a table inside one is file-only.
        Some(Value::Table(_)) if section.is_none() => bail!("unknown setting {path}"),
        Some(Value::Table(_)) => bail!("{path}: can only be set in the config file"),
        Some(_) => vec![
            Some(Value::String(value.to_string())),
            Some(Value::String(trimmed.to_string())),
        ],
        None if value.is_empty() => vec![None],
        None => vec![
            Some(Value::String(value.to_string())),
            Some(Value::String(trimmed.to_string())),
            literal(trimmed),
        ],
    };
    let mut first_error = None;
    for reading in readings {
        let mut candidate = tree.clone();
        let table = match section {
            // A section the file does not mention starts from the
            // configuration's default for it (which may differ from the
            // section type's own default: `[grpc] addr` is port 50051).
            Some(s) => match candidate.entry(s).or_insert_with(|| {
                shape
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| Value::Table(Table::new()))
            }) {
                Value::Table(table) => table,
                _ => bail!("{s}: not a table"),
            },
            None => &mut candidate,
        };
        match reading {
            Some(reading) => table.insert(key.to_string(), reading),
            None => table.remove(key),
        };
        match Value::Table(candidate.clone()).try_into::<Config>() {
            Ok(_) => {
                *tree = candidate;
                return Ok(());
            }
            Err(e) => {
                first_error.get_or_insert(e.message().to_string());
            }
        }
    }
    bail!(
        "{path}: {}",
        first_error.unwrap_or_else(|| "cannot be set".into())
    )
}

fn parse<T: std::str::FromStr>(path: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{path}: cannot parse {value:?}: {e}"))
}

/// `text` read as a TOML value (`42`, `true`), for a key whose type the
/// defaults do not show.
fn literal(text: &str) -> Option<Value> {
    toml::from_str::<Table>(&format!("value = {text}"))
        .ok()?
        .remove("value")
}

/// The keys of the struct at `path` inside `T` (`&[]`: `T`'s own), as its
/// derived `Deserialize` lists them.
pub(super) fn struct_fields<T: DeserializeOwned>(path: &[&str]) -> &'static [&'static str] {
    let found = Cell::new(None);
    let _ = T::deserialize(Probe {
        path,
        found: &found,
    });
    found.get().unwrap_or(&[])
}

/// A deserializer that walks `path` into a struct and records the field
/// list of the struct it arrives at, then stops with an error.
struct Probe<'a> {
    path: &'a [&'a str],
    found: &'a Cell<Option<&'static [&'static str]>>,
}

fn stop() -> de::value::Error {
    de::Error::custom("probe stops here")
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(stop())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.path.split_first() {
            None => {
                self.found.set(Some(fields));
                Err(stop())
            }
            Some((key, rest)) => visitor.visit_map(OneEntry {
                key: Some(key),
                value: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A map of one key, whose value is probed further.
struct OneEntry<'a> {
    key: Option<&'a str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(probe) => seed.deserialize(probe),
            None => Err(stop()),
        }
    }
}

/// Every variable the overlay reads, with its key (`grpc.addr`): derived
/// from the types, as `overlay` derives them.
#[cfg(test)]
pub(super) fn variables() -> Vec<(String, String)> {
    let shape = match Value::try_from(Config::default()) {
        Ok(Value::Table(table)) => table,
        _ => unreachable!("the default configuration serialises to a table"),
    };
    let mut variables = Vec::new();
    for top in struct_fields::<Config>(&[]) {
        match shape.get(*top) {
            Some(Value::Table(section)) => {
                for key in struct_fields::<Config>(&[top]) {
                    if !section.get(*key).is_some_and(Value::is_table) {
                        variables.push((
                            format!("FERRY_{}_{}", top, key).to_ascii_uppercase(),
                            format!("{top}.{key}"),
                        ));
                    }
                }
            }
            _ => variables.push((format!("FERRY_{top}").to_ascii_uppercase(), top.to_string())),
        }
    }
    variables
}
