//! The Raspberry Pi image, checked without a Pi: builds `recipes/raspberrypi.toml` with the
//! real `hearth-imager` (or inspects the output directory named by `HEARTH_RPI_IMAGE_DIR`,
//! which `ci/image-repro.sh` passes after its build) and reads it back with the same tools
//! a person would use: `sfdisk --json` for the MBR, mtools (`mdir`, `mtype`, `mcopy` with
//! `-i IMAGE@@OFFSET`) for the FAT partitions, `unsquashfs -cat` for the root slots.
//!
//! What it proves: the partition table the firmware reads (FAT16 `autoboot`, FAT32
//! `boot-a`/`boot-b`, logical `root-a`/`root-b`), the firmware's A/B files
//! (`autoboot.txt` with `[all]`/`[tryboot]`), each slot's `config.txt` keys and one-line
//! `cmdline.txt` naming its own root by PARTUUID, the Pi 4 firmware blobs, the Pi 4 and
//! Pi 5 device trees (FDT magic), the kernel (arm64) and initramfs (`/init` an aarch64 ELF)
//! byte-equal to the build outputs, and the squashfs slots holding an aarch64 `hearthd`.
//! What it cannot prove: that a Pi boots it (see `imager/README.md`).
//!
//! Ignored in `cargo test` (a build takes minutes: mmdebstrap through qemu-user, as root,
//! with the Debian mirror); `make test` runs it from `ci/systest/zz-boot-aarch64.sh` on the
//! image that script builds (or finds in its cache) with `HEARTH_RPI_IMAGE_DIR`. By hand:
//! `cargo test -p hearth-imager --test rpi_layout -- --ignored`, which builds the image from
//! the release aarch64 binaries (`ci/aarch64-bins.sh` shows how to make them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(program: &str, args: &[&str]) -> String {
    String::from_utf8(run(program, args)).unwrap()
}

/// The output directory: given, or built now into `tmp`.
fn image_dir(tmp: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_RPI_IMAGE_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let init = target.join("aarch64-unknown-linux-musl/release/hearth-init");
    let hearthd = target.join("aarch64-unknown-linux-gnu/release/hearthd");
    for b in [&init, &hearthd] {
        assert!(
            b.exists(),
            "{} missing: build the aarch64 binaries first (ci/aarch64-bins.sh shows how)",
            b.display()
        );
    }
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/raspberrypi.toml");
    let out = tmp.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_hearth-imager"))
        .arg("build")
        .arg("--recipe")
        .arg(&recipe)
        .arg("--out")
        .arg(&out)
        .arg("--hearth-init")
        .arg(&init)
        .arg("--hearthd")
        .arg(&hearthd)
        .status()
        .unwrap();
    assert!(status.success(), "hearth-imager build failed");
    out
}

struct Part {
    start: u64,
    size: u64,
    ty: String,
}

fn partitions(img: &Path) -> (String, Vec<Part>) {
    let json: serde_json::Value =
        serde_json::from_slice(&run("sfdisk", &["--json", img.to_str().unwrap()])).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "dos", "{json}");
    assert_eq!(table["sectorsize"], 512, "{json}");
    let parts = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Part {
            start: p["start"].as_u64().unwrap() * 512,
            size: p["size"].as_u64().unwrap() * 512,
            ty: p["type"].as_str().unwrap().to_owned(),
        })
        .collect();
    (table["id"].as_str().unwrap().to_owned(), parts)
}

/// `IMAGE@@OFFSET`, mtools' way to address a partition inside a disk image.
fn fat(img: &Path, p: &Part) -> String {
    format!("{}@@{}", img.display(), p.start)
}

fn fat_files(at: &str) -> Vec<String> {
    let mut files: Vec<String> = text("mdir", &["-i", at, "-b", "::"])
        .lines()
        .map(|l| l.trim_start_matches("::/").to_owned())
        .collect();
    files.sort();
    files
}

fn fat_read(at: &str, name: &str, tmp: &Path) -> Vec<u8> {
    let dest = tmp.join("mcopy.out");
    let _ = std::fs::remove_file(&dest);
    run(
        "mcopy",
        &["-i", at, &format!("::{name}"), dest.to_str().unwrap()],
    );
    std::fs::read(dest).unwrap()
}

fn elf_machine(bytes: &[u8]) -> u16 {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    u16::from_le_bytes([bytes[18], bytes[19]])
}
const EM_AARCH64: u16 = 183;

/// The data of `want` in a newc cpio archive.
fn cpio_file<'a>(mut a: &'a [u8], want: &str) -> Option<&'a [u8]> {
    let pad = |n: usize| n.div_ceil(4) * 4;
    while a.len() >= 110 && &a[..6] == b"070701" {
        let field = |i: usize| {
            usize::from_str_radix(std::str::from_utf8(&a[6 + i * 8..14 + i * 8]).unwrap(), 16)
                .unwrap()
        };
        let (size, namesize) = (field(6), field(11));
        let name = std::str::from_utf8(&a[110..110 + namesize - 1]).unwrap();
        let data_at = pad(110 + namesize);
        if name == want {
            return Some(&a[data_at..data_at + size]);
        }
        if name == "TRAILER!!!" {
            return None;
        }
        a = &a[data_at + pad(size)..];
    }
    None
}

#[test]
#[ignore = "builds a Raspberry Pi image (minutes, root, Debian mirror); run with --ignored"]
fn raspberry_pi_image_layout_and_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = image_dir(tmp.path());
    let img = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-raspberrypi.img"))
        .expect("no hearth-*-raspberrypi.img in the output");
    let squashfs = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".root.squashfs"))
        .expect("no root squashfs in the output");

    // The MBR: FAT16 autoboot, two FAT32 firmware partitions, extended with two slots.
    let (id, parts) = partitions(&img);
    let types: Vec<&str> = parts.iter().map(|p| p.ty.as_str()).collect();
    assert_eq!(types, ["e", "c", "c", "f", "83", "83"]);
    assert_eq!(parts[0].start, MIB, "1 MiB aligned");
    let ext = &parts[3];
    for slot in &parts[4..] {
        assert!(slot.start > ext.start && slot.start + slot.size <= ext.start + ext.size);
    }
    let disk_len = std::fs::metadata(&img).unwrap().len();
    assert_eq!(
        disk_len,
        ext.start + ext.size,
        "the image ends with the last slot"
    );
    let partuuid = |n: u32| format!("{}-{n:02}", id.trim_start_matches("0x"));

    // autoboot.txt: A is partition 2, a tryboot reboot boots B (partition 3).
    let autoboot = fat(&img, &parts[0]);
    assert_eq!(fat_files(&autoboot), ["autoboot.txt"]);
    let ab = String::from_utf8(fat_read(&autoboot, "autoboot.txt", tmp.path())).unwrap();
    assert!(
        ab.len() <= 512,
        "the firmware reads 512 bytes of autoboot.txt"
    );
    let (all, tryboot) = ab.split_once("[tryboot]\n").unwrap();
    assert!(all.starts_with("[all]\n"), "{ab}");
    assert!(all.contains("tryboot_a_b=1\n") && all.contains("boot_partition=2\n"));
    assert_eq!(tryboot.trim(), "boot_partition=3");

    let kernel = std::fs::read(dir.join("vmlinuz")).unwrap();
    let initrd = std::fs::read(dir.join("initrd.img")).unwrap();
    for (slot, part, root_n) in [('a', &parts[1], 5), ('b', &parts[2], 6)] {
        let at = fat(&img, part);
        let files = fat_files(&at);
        assert!(!files.iter().any(|f| f == "autoboot.txt"), "{files:?}");
        for want in [
            "bcm2711-rpi-4-b.dtb",
            "bcm2712-rpi-5-b.dtb",
            "cmdline.txt",
            "config.txt",
            "fixup4.dat",
            "initrd.img",
            "start4.elf",
            "vmlinuz",
        ] {
            assert!(
                files.iter().any(|f| f == want),
                "slot {slot}: {want} in {files:?}"
            );
        }
        let config = String::from_utf8(fat_read(&at, "config.txt", tmp.path())).unwrap();
        for want in [
            "arm_64bit=1",
            "kernel=vmlinuz",
            "initramfs initrd.img followkernel",
            "cmdline=cmdline.txt",
            "[pi4]\ndevice_tree=bcm2711-rpi-4-b.dtb",
            "[pi5]\ndevice_tree=bcm2712-rpi-5-b.dtb",
        ] {
            assert!(config.contains(want), "slot {slot}: {want:?} in {config}");
        }
        let cmdline = String::from_utf8(fat_read(&at, "cmdline.txt", tmp.path())).unwrap();
        assert_eq!(cmdline.lines().count(), 1, "{cmdline:?}");
        let words: Vec<&str> = cmdline.split_whitespace().collect();
        let root = format!("root=PARTUUID={}", partuuid(root_n));
        assert!(words.contains(&root.as_str()), "{cmdline}");
        assert!(words.contains(&format!("hearth.slot={slot}").as_str()));
        for dtb in ["bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb"] {
            let d = fat_read(&at, dtb, tmp.path());
            assert_eq!(
                &d[..4],
                [0xd0, 0x0d, 0xfe, 0xed],
                "{dtb} is not a device tree"
            );
        }
        assert_eq!(fat_read(&at, "vmlinuz", tmp.path()), kernel);
        assert_eq!(fat_read(&at, "initrd.img", tmp.path()), initrd);
    }
    // Debian's arm64 kernel is a gzip Image (the firmware unpacks it) or a plain Image.
    assert!(
        kernel.starts_with(&[0x1f, 0x8b]) || kernel.get(56..60) == Some(b"ARM\x64".as_slice()),
        "vmlinuz is neither gzip nor an arm64 Image"
    );
    let init = cpio_file(&initrd, "init").expect("no /init in the initramfs");
    assert_eq!(elf_machine(init), EM_AARCH64, "/init is not aarch64");
    assert!(cpio_file(&initrd, "etc/hearth/modules").is_some());

    // Both slots hold the root squashfs, whose hearthd is an aarch64 binary.
    let root = std::fs::read(&squashfs).unwrap();
    assert_eq!(&root[..4], b"hsqs");
    let mut disk = std::fs::File::open(&img).unwrap();
    for p in &parts[4..] {
        let mut slot = vec![0u8; root.len()];
        disk.seek(SeekFrom::Start(p.start)).unwrap();
        disk.read_exact(&mut slot).unwrap();
        assert!(slot == root, "a slot differs from the root squashfs");
    }
    let hearthd = run(
        "unsquashfs",
        &["-cat", squashfs.to_str().unwrap(), "usr/bin/hearthd"],
    );
    assert_eq!(elf_machine(&hearthd), EM_AARCH64, "hearthd is not aarch64");
    for f in ["usr/sbin/hearth-init", "etc/hearth/version"] {
        run("unsquashfs", &["-cat", squashfs.to_str().unwrap(), f]);
    }

    // SHA256SUMS covers the image as written.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let name = img.file_name().unwrap().to_str().unwrap();
    let line = sums.lines().find(|l| l.ends_with(name)).unwrap();
    let want = text("sha256sum", &[img.to_str().unwrap()]);
    assert_eq!(
        line.split_whitespace().next(),
        want.split_whitespace().next()
    );
}
