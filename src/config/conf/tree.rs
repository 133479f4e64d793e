//! The parsed configuration: a tree of [`Item`]s (a [`Value`] and where it was written), with
//! [`Map`]s that keep file order.
//!
//! Invariants: a [`Map`]'s index holds exactly the positions of its entries' keys; keys are
//! unique within a map (a repeated key replaced the earlier value in the earlier slot).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Where an item was written, as nats-server reports it: the file (`None` for text parsed
/// without one), the line, and nats-server's column (see the module docs of `conf`: 0-based on
/// line 1, 1-based after, in bytes).
///
/// For an entry of a map, the position is its key's; for an element of an array, the
/// element's own (for a map or array element: just after its closing bracket, as
/// nats-server has it). Values that came from an environment variable, and everything inside
/// them, have the position of the `$NAME` that brought them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub file: Option<Arc<Path>>,
    pub line: usize,
    pub column: usize,
}

/// A configuration value, as nats-server's parser types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Float(f64),
    Bool(bool),
    String(String),
    /// A `YYYY-MM-DDTHH:MM:SSZ` datetime, as written (checked to be a real UTC time).
    Datetime(String),
    Array(Vec<Item>),
    Map(Map),
}

impl Value {
    /// The Go type nats-server holds this value as, as its type errors name it
    /// (`interface conversion: interface {} is string, not int64`).
    pub fn go_type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "int64",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Datetime(_) => "time.Time",
            Value::Array(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(truth) => Some(*truth),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Item]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub position: Position,
    /// True when this item is a variable definition that a `$NAME` referenced (nats-server
    /// does not report such keys as unknown fields).
    pub used_variable: bool,
}

impl Item {
    /// An item nobody referenced.
    pub fn new(value: Value, position: Position) -> Item {
        Item {
            value,
            position,
            used_variable: false,
        }
    }
}

/// A map in file order; a repeated key replaces the earlier entry's item in the earlier
/// entry's place (nats-server keeps the later value). Keys are case-preserving and looked up
/// exactly (nats-server's options compare them case-insensitively themselves).
#[derive(Debug, Clone, Default)]
pub struct Map {
    entries: Vec<(String, Item)>,
    /// Key -> index into `entries`.
    index: HashMap<String, usize>,
}

impl PartialEq for Map {
    /// Equal when the same keys map to equal items, in the same order.
    fn eq(&self, other: &Map) -> bool {
        self.entries == other.entries
    }
}

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Item)> {
        self.entries.iter().map(|(key, item)| (key.as_str(), item))
    }

    /// Items in file order, to change them in place.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Item> {
        self.entries.iter_mut().map(|(_, item)| item)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.index.get(key).map(|&slot| &self.entries[slot].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Item> {
        let slot = *self.index.get(key)?;
        Some(&mut self.entries[slot].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `item`: a new key goes last, an existing key keeps its place and gets
    /// the new item. Returns the item replaced.
    pub fn insert(&mut self, key: String, item: Item) -> Option<Item> {
        if let Some(&slot) = self.index.get(&key) {
            return Some(std::mem::replace(&mut self.entries[slot].1, item));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, item));
        None
    }

    /// Removes `key`, keeping the others in order.
    pub fn remove(&mut self, key: &str) -> Option<Item> {
        let slot = self.index.remove(key)?;
        let (_, item) = self.entries.remove(slot);
        for later in self.index.values_mut() {
            if *later > slot {
                *later -= 1;
            }
        }
        Some(item)
    }
}

impl IntoIterator for Map {
    type Item = (String, Item);
    type IntoIter = std::vec::IntoIter<(String, Item)>;

    /// Entries in file order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'map> IntoIterator for &'map Map {
    type Item = (&'map str, &'map Item);
    type IntoIter = Box<dyn Iterator<Item = (&'map str, &'map Item)> + 'map>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(number: i64) -> Item {
        Item::new(Value::Integer(number), Position::default())
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_takes_the_new_value() {
        let mut map = Map::new();
        assert!(map.insert("a".into(), item(1)).is_none());
        assert!(map.insert("b".into(), item(2)).is_none());
        assert_eq!(map.insert("a".into(), item(3)), Some(item(1)));
        let entries: Vec<(&str, i64)> = map
            .iter()
            .map(|(key, item)| (key, item.value.as_integer().unwrap()))
            .collect();
        assert_eq!(entries, [("a", 3), ("b", 2)]);
        assert_eq!(map.len(), 2);
        assert!(map.get("A").is_none(), "keys are looked up exactly");
    }

    #[test]
    fn remove_keeps_the_index_consistent() {
        let mut map = Map::new();
        for (number, key) in ["a", "b", "c"].into_iter().enumerate() {
            map.insert(key.into(), item(number as i64));
        }
        assert_eq!(map.remove("a"), Some(item(0)));
        assert_eq!(map.get("c"), Some(&item(2)));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert!(map.remove("a").is_none());
    }

    #[test]
    fn go_type_names_are_the_ones_nats_server_prints() {
        assert_eq!(Value::Integer(1).go_type_name(), "int64");
        assert_eq!(Value::Float(1.5).go_type_name(), "float64");
        assert_eq!(Value::Bool(true).go_type_name(), "bool");
        assert_eq!(Value::String(String::new()).go_type_name(), "string");
        assert_eq!(
            Value::Datetime("2016-05-04T18:53:41Z".into()).go_type_name(),
            "time.Time"
        );
        assert_eq!(Value::Array(Vec::new()).go_type_name(), "[]interface {}");
        assert_eq!(
            Value::Map(Map::new()).go_type_name(),
            "map[string]interface {}"
        );
    }
}
