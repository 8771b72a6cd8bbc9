//! How a table of the recipe is declared: [`table!`] makes its struct (read with serde, every
//! key optional), its defaults (those of the settings it sets), its checks and its commented TOML;
//! and the checks its keys use.

use crate::audio::synth::Engine;

/// A table of the recipe: `Name("name"): Target { /// doc  key: Type = target_field, check; }`.
/// Each key sets `target_field` of the settings `Target` (whose `Default` gives the key's
/// default); `check` says whether a value can be used; the doc comments are the `--help` of the
/// key in the printed recipe.
macro_rules! table {
    ($(#[doc = $tdoc:literal])* $name:ident($toml:literal): $target:ty {
        $($(#[doc = $doc:literal])* $key:ident: $ty:ty = $field:ident, $check:expr;)*
    }) => {
        $(#[doc = $tdoc])*
        #[derive(Clone, Debug, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[doc = $doc])* pub $key: $ty,)*
        }

        #[allow(clippy::clone_on_copy, clippy::useless_conversion)]
        impl $name {
            /// The table that gives `o`'s values.
            pub fn of(o: &$target) -> Self {
                $name { $($key: o.$field.clone().into(),)* }
            }

            /// Sets `o`'s values to the table's.
            pub fn apply(&self, o: &mut $target) {
                $(o.$field = self.$key.clone().into();)*
            }

            /// The first key whose value cannot be used (`table.key`), and why.
            fn fault(&self) -> Option<(String, String)> {
                $(if let Err(why) = ($check)(&self.$key) {
                    return Some((format!("{}.{}", $toml, stringify!($key)), why));
                })*
                None
            }

            /// The table as TOML: its doc comment and header, then each key after its own.
            fn write(&self, out: &mut String) {
                use $crate::train::recipe::table::Toml;
                out.push('\n');
                $(out.push_str(&format!("#{}\n", $tdoc));)*
                out.push_str(&format!("[{}]\n", $toml));
                $(
                    $(out.push_str(&format!("#{}\n", $doc));)*
                    out.push_str(&format!("{} = {}\n", stringify!($key), self.$key.toml()));
                )*
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::of(&<$target>::default())
            }
        }
    };
}
pub(super) use table;

/// A value as TOML, read back as itself.
pub trait Toml {
    fn toml(&self) -> String;
}

impl Toml for f32 {
    /// The shortest decimal that reads back as this `f32` (`0.001`, `5.0`).
    fn toml(&self) -> String {
        format!("{self:?}")
    }
}

impl Toml for usize {
    fn toml(&self) -> String {
        self.to_string()
    }
}

impl Toml for u64 {
    fn toml(&self) -> String {
        self.to_string()
    }
}

impl Toml for bool {
    fn toml(&self) -> String {
        self.to_string()
    }
}

/// The weights of the five sources of "none" (take halves, altered takes, background, bank,
/// unknown): exactly five.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights(pub [f32; 5]);

impl From<[f32; 5]> for Weights {
    fn from(w: [f32; 5]) -> Self {
        Weights(w)
    }
}

impl From<Weights> for [f32; 5] {
    fn from(w: Weights) -> Self {
        w.0
    }
}

impl<'de> serde::Deserialize<'de> for Weights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Vec<f32> as serde::Deserialize>::deserialize(d)?;
        let n = v.len();
        v.try_into().map(Weights).map_err(|_| {
            serde::de::Error::custom(format!(
                "expected 5 weights (take halves, altered takes, background, bank, unknown), got {n}"
            ))
        })
    }
}

impl Toml for Weights {
    fn toml(&self) -> String {
        let items: Vec<String> = self.0.iter().map(Toml::toml).collect();
        format!("[{}]", items.join(", "))
    }
}

impl Toml for Vec<Engine> {
    fn toml(&self) -> String {
        let items: Vec<String> = self.iter().map(|e| format!("\"{}\"", e.name())).collect();
        format!("[{}]", items.join(", "))
    }
}

/// What a check says of a value it refuses.
pub type Check = std::result::Result<(), String>;

/// Any value.
pub fn any<T>(_: &T) -> Check {
    Ok(())
}

/// A number from `lo` to `hi`.
pub fn between(lo: f32, hi: f32) -> impl Fn(&f32) -> Check {
    move |&v| match (lo..=hi).contains(&v) {
        true => Ok(()),
        false => Err(format!("expected a number from {lo} to {hi}, got {v}")),
    }
}

/// A number strictly between `lo` and `hi`.
pub fn inside(lo: f32, hi: f32) -> impl Fn(&f32) -> Check {
    move |&v| match v > lo && v < hi {
        true => Ok(()),
        false => Err(format!(
            "expected a number above {lo} and below {hi}, got {v}"
        )),
    }
}

/// A score or share: a number from 0 to 1.
pub fn score(v: &f32) -> Check {
    between(0.0, 1.0)(v)
}

/// A finite number.
pub fn finite(&v: &f32) -> Check {
    match v.is_finite() {
        true => Ok(()),
        false => Err(format!("expected a finite number, got {v}")),
    }
}

/// A weight: a finite number, 0 or more.
pub fn weight(&v: &f32) -> Check {
    match v.is_finite() && v >= 0.0 {
        true => Ok(()),
        false => Err(format!("expected a number >= 0, got {v}")),
    }
}

/// A weight per source.
pub fn weights(v: &Weights) -> Check {
    v.0.iter().try_for_each(weight)
}

/// A whole number from `lo` to `hi`.
pub fn count(lo: usize, hi: usize) -> impl Fn(&usize) -> Check {
    move |&v| match (lo..=hi).contains(&v) {
        true => Ok(()),
        false => Err(format!(
            "expected a whole number from {lo} to {hi}, got {v}"
        )),
    }
}

/// At least one speech engine.
pub fn engines(v: &[Engine]) -> Check {
    match v.is_empty() {
        true => Err(
            "expected at least one speech engine (espeak, flite, festival, mbrola), got none"
                .into(),
        ),
        false => Ok(()),
    }
}
