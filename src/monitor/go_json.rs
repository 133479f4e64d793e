//! JSON values written as Go's `encoding/json` writes them where serde's default differs.

use serde::Serializer;

/// A Go `float64`: integral values without a fraction (`1`, not `1.0`), others in the
/// shortest form that reads back the same, as Go's `strconv.FormatFloat(f, 'g'-like)`.
pub fn go_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e21 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// A Go `float64` as a JSON value (see [`go_float`]).
pub fn go_number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e21 {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Value::from(value)
    }
}
