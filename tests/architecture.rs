//! The architecture, checked: the layers and forbidden arrows that
//! ARCHITECTURE.md states are read from it, the arrows between top-level
//! modules are read from `src/` (every `crate::` path outside test code),
//! and any cycle, upward arrow or forbidden arrow fails with the file that
//! draws it. So the picture in ARCHITECTURE.md cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A top-level module of `src/` and the files it is made of.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name").to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        collect(&path, &mut files);
        if !files.is_empty() {
            modules.entry(name).or_insert_with(Vec::new).extend(files);
        }
    }
    modules
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).expect("readable dir") {
            collect(&entry.expect("dir entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// The code of a file that is built outside `cargo test`: comments and
/// `#[cfg(test)]` modules left out. Files that are test modules themselves
/// (declared `#[cfg(test)] mod x;`) are found by [`test_files`].
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "#[cfg(test)]" {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if next.ends_with('{') && is_mod(next) {
                // Skip the inline test module: to its closing brace.
                let mut depth = 0i32;
                i += 1;
                while i < lines.len() {
                    let code = strip_comment(lines[i]);
                    depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                    i += 1;
                    if depth <= 0 {
                        break;
                    }
                }
                continue;
            }
        }
        out.push_str(strip_comment(line));
        out.push('\n');
        i += 1;
    }
    out
}

fn is_mod(line: &str) -> bool {
    let line = line.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
    line.starts_with("mod ")
}

fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(at) if !line[..at].contains('"') => &line[..at],
        _ => line,
    }
}

/// Files declared as `#[cfg(test)] mod x;`: test code, left out.
fn test_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut tests = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let next = pair[1].trim();
            if pair[0].trim() == "#[cfg(test)]" && is_mod(next) && next.ends_with(';') {
                let name = next.trim_end_matches(';').rsplit(' ').next().expect("mod name");
                let dir = if file.file_name().is_some_and(|f| f == "mod.rs" || f == "lib.rs") {
                    file.parent().expect("parent").to_owned()
                } else {
                    file.with_extension("")
                };
                tests.insert(dir.join(format!("{name}.rs")));
                tests.insert(dir.join(name));
            }
        }
    }
    tests
}

/// The top-level modules that `code` names through `crate::` paths,
/// including grouped imports (`use crate::{a::X, b};`).
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.insert(first_ident(&item));
        } else {
            names.insert(first_ident(rest));
        }
    }
    names.remove("");
    names
}

fn first_ident(s: &str) -> String {
    s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// `from → to → [files that draw the arrow]`.
type Arrows = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn arrows(root: &Path) -> Arrows {
    let src = root.join("src");
    let modules = modules(&src);
    let all: Vec<PathBuf> = modules.values().flatten().cloned().collect();
    let tests = test_files(&all);
    let mut arrows = Arrows::new();
    for (module, files) in &modules {
        arrows.entry(module.clone()).or_default();
        for file in files {
            if tests.iter().any(|t| file.starts_with(t)) {
                continue;
            }
            let code = production_code(&fs::read_to_string(file).expect("readable source"));
            for target in named_modules(&code) {
                if target != *module && modules.contains_key(&target) {
                    let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
                    arrows.entry(module.clone()).or_default().entry(target).or_default().insert(shown);
                }
            }
        }
    }
    arrows
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(arrows: &Arrows) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        arrows: &'a Arrows,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.arrows.get(v).into_iter().flat_map(BTreeMap::keys) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        arrows,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in arrows.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

/// What ARCHITECTURE.md's "Layers" section says: the layers top to bottom
/// (`N. \`a\`, \`b\``), and the forbidden arrows (`- \`a\` ↛ \`b\``).
struct Declared {
    layers: Vec<BTreeSet<String>>,
    forbidden: Vec<(String, String)>,
}

fn declared(root: &Path) -> Declared {
    let text = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text.split("\n## Layers").nth(1).expect("ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let ticked =
        |line: &str| -> Vec<String> { line.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut layers = Vec::new();
    let mut forbidden = Vec::new();
    for line in section.lines() {
        // What follows a line's first `:` explains it.
        let trimmed = line.trim_start().split(": ").next().unwrap_or_default();
        if trimmed.split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok()) {
            layers.push(ticked(trimmed).into_iter().collect());
        } else if trimmed.starts_with("- ") && trimmed.contains('↛') {
            let (from, to) = trimmed.split_once('↛').expect("arrow");
            for a in ticked(from) {
                for b in ticked(to) {
                    forbidden.push((a.clone(), b));
                }
            }
        }
    }
    assert!(layers.len() >= 3, "ARCHITECTURE.md's Layers section lists its layers as `N. \\`module\\`, …`");
    Declared { layers, forbidden }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_cycle_between_top_level_modules() {
    let arrows = arrows(&root());
    let cycles = cycles(&arrows);
    let explain: Vec<String> = cycles
        .iter()
        .map(|c| {
            let inner: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    arrows[a].iter().filter(|(b, _)| c.contains(b)).map(move |(b, files)| {
                        format!("  {a} → {b} ({})", files.iter().cloned().collect::<Vec<_>>().join(", "))
                    })
                })
                .collect();
            format!("cycle of {}:\n{}", c.join(", "), inner.join("\n"))
        })
        .collect();
    assert!(cycles.is_empty(), "{}", explain.join("\n"));
}

#[test]
fn every_arrow_points_down_the_declared_layers() {
    let root = root();
    let arrows = arrows(&root);
    let declared = declared(&root);
    let layer_of = |m: &str| declared.layers.iter().position(|l| l.contains(m));
    let mut problems = Vec::new();
    for module in arrows.keys() {
        if layer_of(module).is_none() {
            problems.push(format!("module `{module}` is in no layer of ARCHITECTURE.md"));
        }
    }
    for name in declared.layers.iter().flatten() {
        if !arrows.contains_key(name) {
            problems.push(format!("ARCHITECTURE.md names `{name}`, which is no module of src/"));
        }
    }
    for (from, targets) in &arrows {
        for (to, files) in targets {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && a >= b
            {
                let files: Vec<_> = files.iter().cloned().collect();
                problems.push(format!(
                    "{from} (layer {}) → {to} (layer {}) does not point down: {}",
                    a + 1,
                    b + 1,
                    files.join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_forbidden_arrow() {
    let root = root();
    let arrows = arrows(&root);
    let declared = declared(&root);
    assert!(
        !declared.forbidden.is_empty(),
        "ARCHITECTURE.md lists forbidden arrows as `- \\`a\\` ↛ \\`b\\``"
    );
    let mut problems = Vec::new();
    for (from, to) in &declared.forbidden {
        if let Some(files) = arrows.get(from).and_then(|t| t.get(to)) {
            let files: Vec<_> = files.iter().cloned().collect();
            problems.push(format!("forbidden arrow {from} → {to}: {}", files.join(", ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Vendor knowledge lives in the vendor's folder: no other production code
/// names a vendor by its key, except the simulators' table.
#[test]
fn no_vendor_key_outside_the_vendors_folders() {
    let root = root();
    let src = root.join("src");
    let keys: Vec<String> = fs::read_dir(src.join("vendors"))
        .expect("src/vendors")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name != "proptests")
        // `http` is also the URL scheme, named all over the HTTP code; the
        // declarative vendor knows no API, so its key leaks no vendor
        // knowledge.
        .filter(|name| name != "http")
        .collect();
    assert!(keys.len() >= 5, "vendor folders: {keys:?}");
    let allowed = [src.join("vendors"), src.join("sim")];
    let mut files = Vec::new();
    collect(&src, &mut files);
    let tests = test_files(&files);
    let mut problems = Vec::new();
    for file in files {
        if allowed.iter().chain(&tests).any(|a| file.starts_with(a)) {
            continue;
        }
        let code = production_code(&fs::read_to_string(&file).expect("readable source"));
        for key in &keys {
            if code.contains(&format!("\"{key}\"")) {
                problems.push(format!(
                    "{} names vendor `{key}`",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A sixth vendor is its folder, its simulator, its docs page and its
/// tests: a registered vendor missing any of them fails here.
#[test]
fn every_registered_vendor_has_a_simulator_a_docs_page_and_golden_events() {
    let root = root();
    let mut problems = Vec::new();
    for vendor in alertd::registry::VENDORS {
        let key = vendor.key;
        if key == "http" {
            // The declarative vendor plays no API of its own: its
            // simulators are the built-in ones, through the definitions in
            // config/http/ (tests/http_source.rs runs each against its
            // vendor's simulator), so each must be named after one.
            let definitions: Vec<String> = fs::read_dir(root.join("config/http"))
                .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if definitions.is_empty() {
                problems.push("`http` has no definitions in config/http/".to_owned());
            }
            for file in definitions {
                let stem = file.trim_end_matches(".toml");
                if !alertd::sim::SIMULATORS.iter().any(|s| s.key == stem) {
                    problems.push(format!("config/http/{file} is named after no simulator"));
                }
            }
        } else if !alertd::sim::SIMULATORS.iter().any(|s| s.key == key) {
            problems.push(format!("`{key}` has no simulator in sim::SIMULATORS"));
        }
        let docs = root.join("docs/vendors").join(format!("{}.md", key.replace('_', "-")));
        if !docs.is_file() {
            problems.push(format!("`{key}` has no docs page {}", docs.display()));
        }
        let goldens = root.join("tests/golden").join(key);
        let count = fs::read_dir(&goldens).map(|d| d.count()).unwrap_or(0);
        if count == 0 {
            problems.push(format!("`{key}` has no golden events in {}", goldens.display()));
        }
    }
    for sim in alertd::sim::SIMULATORS {
        if alertd::registry::lookup(sim.key).is_none() {
            problems.push(format!("simulator `{}` plays no registered vendor", sim.key));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_grouped_imports_and_skips_tests_and_comments() {
    let code = production_code(
        "use crate::{a::X, b::{Y, Z}};\n// crate::c\nfn f() { crate::d::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::e;\n}\n",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["a", "b", "d"]);
    let mut arrows = Arrows::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x"), ("z", "w")] {
        arrows.entry(a.into()).or_default().entry(b.into()).or_default();
    }
    assert_eq!(cycles(&arrows), [["x", "y", "z"]]);
}
