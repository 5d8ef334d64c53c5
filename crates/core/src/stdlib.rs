//! The standard library of recipe modules, embedded in the binary: `import "std/NAME"`.

/// Module name and text, in the order `cptc` lists them.
pub const MODULES: [(&str, &str); 5] = [
    ("schedules", include_str!("../stdlib/schedules.cpt")),
    ("replay", include_str!("../stdlib/replay.cpt")),
    ("eval", include_str!("../stdlib/eval.cpt")),
    ("phases", include_str!("../stdlib/phases.cpt")),
    ("probe", include_str!("../stdlib/probe.cpt")),
];

/// The text of `std/NAME` (with or without `.cpt`).
pub fn module(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".cpt").unwrap_or(name);
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|(n, _)| *n).collect()
}
