//! `scripts/package-deb` builds a package whose /usr/bin/alertd is stripped
//! of its debug info, whose description names every vendor, and which holds
//! the unit, the config, the docs and the man page. The package is built
//! from the binary this test run already built (`ALERTD_BINARY`), so the
//! test costs a strip and a compression, not a release build.

mod common;

use std::path::Path;
use std::process::Command;

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_debian_package_holds_a_stripped_binary_and_names_every_vendor() {
    let missing: Vec<&str> = [
        ("cargo-deb", succeeds("cargo", &["deb", "--version"])),
        ("dpkg-deb", succeeds("dpkg-deb", &["--version"])),
        ("objcopy", succeeds("objcopy", &["--version"])),
        ("readelf", succeeds("readelf", &["--version"])),
    ]
    .into_iter()
    .filter_map(|(tool, found)| (!found).then_some(tool))
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIP the_debian_package_…: {} not installed (`cargo install --locked cargo-deb`; \
             dpkg-deb and binutils from the distribution)",
            missing.join(", ")
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let built = common::alertd_bin();
    let status = Command::new(root.join("scripts/package-deb"))
        .env("ALERTD_BINARY", &built)
        .arg("--output")
        .arg(out.path())
        .arg("--fast")
        .status()
        .unwrap();
    assert!(status.success(), "scripts/package-deb failed");
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");
    let deb = deb.to_str().unwrap();

    let description = run("dpkg-deb", &["-f", deb, "Description"]);
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    for vendor in alertd::registry::VENDORS {
        // The declarative vendor is named by what it is, not as a product.
        let name = if vendor.key == "http" { "declarative HTTP source" } else { vendor.name };
        assert!(description.contains(name), "`{name}` in: {description}");
    }

    let listing = run("dpkg-deb", &["-c", deb]);
    for path in [
        "./usr/bin/alertd",
        "./etc/alertd/alertd.toml",
        "./usr/lib/systemd/system/alertd.service",
        "./usr/lib/systemd/system/alertd@.service",
        "./usr/share/man/man1/alertd.1.gz",
        "./usr/share/alertd/schemas/alertd-event.v1.schema.json",
        "./usr/share/doc/alertd/README.md",
        "./usr/share/doc/alertd/vendors/catchpoint.md",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "{path} in:\n{listing}");
    }
    let control = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-e", deb, control.path().to_str().unwrap()]);
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/alertd/alertd.toml");

    let tree = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-x", deb, tree.path().to_str().unwrap()]);
    let installed = tree.path().join("usr/bin/alertd");
    let sections = run("readelf", &["-S", "--wide", installed.to_str().unwrap()]);
    // (`.debug_gdb_scripts` is a 34-byte loaded section naming gdb's
    // pretty-printers, not debug info.)
    for debug in [".debug_info", ".debug_line", ".debug_str", ".debug_abbrev", ".debug_ranges"] {
        assert!(!sections.contains(debug), "{debug} left in the binary:\n{sections}");
    }
    assert!(sections.contains(".gnu_debuglink"), "the binary points at its split-off debug info");
    assert!(sections.contains(".symtab"), "function names stay for backtraces");
    let version = run(installed.to_str().unwrap(), &["--version"]);
    assert!(version.starts_with("alertd "), "{version}");

    // The installed binary is the built one less its debug info (how much
    // that is depends on the profile: most of a release build's size, a
    // fifth of the test build's line tables), and the installed size is
    // that binary plus a few hundred KiB of docs, config and units.
    let binary_kib = std::fs::metadata(&installed).unwrap().len() / 1024;
    let built_kib = std::fs::metadata(&built).unwrap().len() / 1024;
    let debug_kib = debug_section_bytes(&run("readelf", &["-S", "--wide", built.to_str().unwrap()])) / 1024;
    assert!(debug_kib > 0, "the built binary has debug info to split off");
    assert!(
        binary_kib + debug_kib <= built_kib + 64,
        "stripped {binary_kib} KiB, built {built_kib} KiB of which {debug_kib} KiB debug info"
    );
    let installed_size: u64 = run("dpkg-deb", &["-f", deb, "Installed-Size"]).trim().parse().unwrap();
    assert!(
        installed_size >= binary_kib && installed_size <= binary_kib + 1024,
        "Installed-Size {installed_size} KiB for a {binary_kib} KiB binary"
    );
    eprintln!(
        "package: /usr/bin/alertd {binary_kib} KiB (built {built_kib} KiB), Installed-Size {installed_size} KiB"
    );
}

/// The bytes of a binary's debug info: its non-loaded `.debug_*` sections,
/// from `readelf -S --wide` (`[Nr] Name Type Address Off Size …`, sizes in
/// hex; `.debug_gdb_scripts` is loaded, not debug info).
fn debug_section_bytes(sections: &str) -> u64 {
    sections
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(']').nth(1)?.split_whitespace().collect();
            let (name, size) = (fields.first()?, fields.get(4)?);
            (name.starts_with(".debug_") && *name != ".debug_gdb_scripts")
                .then(|| u64::from_str_radix(size, 16).ok())
                .flatten()
        })
        .sum()
}
