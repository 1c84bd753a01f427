//! Tests for layer application: whiteouts, compression, and refused escapes.

use std::os::unix::fs::MetadataExt;

use super::*;

/// Builds a tar in memory, writing names raw so that malicious paths can be made.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn raw(&mut self, kind: EntryType, name: &str, link: Option<&str>, data: &[u8], mode: u32) {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
    }

    fn file(&mut self, name: &str, data: &str) -> &mut Self {
        self.raw(EntryType::Regular, name, None, data.as_bytes(), 0o640);
        self
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(EntryType::Directory, name, None, b"", 0o750);
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, name, Some(target), b"", 0o777);
        self
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, name, Some(target), b"", 0o640);
        self
    }

    fn write(&mut self, path: &Path) -> PathBuf {
        let builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        fs::write(path, builder.into_inner().unwrap()).unwrap();
        path.to_path_buf()
    }
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

#[test]
fn later_layers_override_and_whiteouts_hide_lower_layers() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let lower = Layer::new()
        .dir("etc/")
        .file("etc/keep", "lower")
        .file("etc/gone", "lower")
        .dir("opt/")
        .file("opt/old", "lower")
        .write(&work.path().join("1.tar"));
    // The opaque marker comes after the new file: it must still only hide lower content.
    let upper = Layer::new()
        .file("etc/keep", "upper")
        .file("etc/.wh.gone", "")
        .file("opt/new", "upper")
        .file("opt/.wh..wh..opq", "")
        .write(&work.path().join("2.tar"));
    apply_layer(&root, &lower).unwrap();
    apply_layer(&root, &upper).unwrap();
    assert_eq!(read(&root, "etc/keep"), "upper");
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(!root.join("opt/old").exists());
    assert_eq!(read(&root, "opt/new"), "upper");
    assert!(!root.join("opt/.wh..wh..opq").exists());
}

#[test]
fn owners_modes_symlinks_and_hardlinks_are_kept() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let layer = Layer::new()
        .dir("srv/")
        .file("srv/a", "data")
        .hardlink("srv/b", "srv/a")
        .symlink("srv/c", "/srv/a")
        .write(&work.path().join("l.tar"));
    apply_layer(&root, &layer).unwrap();
    let a = fs::metadata(root.join("srv/a")).unwrap();
    let b = fs::metadata(root.join("srv/b")).unwrap();
    assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1000, 1000, 0o640));
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        fs::metadata(root.join("srv")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        fs::read_link(root.join("srv/c")).unwrap(),
        Path::new("/srv/a")
    );
}

#[test]
fn gzip_and_zstd_layers_are_decompressed() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let plain = Layer::new()
        .file("gz", "g")
        .write(&work.path().join("g.tar"));
    let bytes = fs::read(&plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &bytes).unwrap();
    fs::write(work.path().join("g.tar.gz"), gz.finish().unwrap()).unwrap();
    apply_layer(&root, &work.path().join("g.tar.gz")).unwrap();
    assert_eq!(read(&root, "gz"), "g");

    let plain = Layer::new()
        .file("zst", "z")
        .write(&work.path().join("z.tar"));
    let bytes = fs::read(&plain).unwrap();
    let compressed =
        ruzstd::encoding::compress_to_vec(&bytes[..], ruzstd::encoding::CompressionLevel::Fastest);
    fs::write(work.path().join("z.tar.zst"), compressed).unwrap();
    apply_layer(&root, &work.path().join("z.tar.zst")).unwrap();
    assert_eq!(read(&root, "zst"), "z");
}

#[test]
fn parent_traversal_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let layer = Layer::new()
        .file("../escaped", "x")
        .write(&work.path().join("l.tar"));
    let err = apply_layer(&root, &layer).unwrap_err().to_string();
    assert!(err.contains("contains `..`"), "{err}");
    assert!(!work.path().join("escaped").exists());
}

#[test]
fn absolute_paths_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let target = work.path().join("abs-target");
    let layer = Layer::new()
        .file(target.to_str().unwrap(), "x")
        .write(&work.path().join("l.tar"));
    let err = apply_layer(&root, &layer).unwrap_err().to_string();
    assert!(err.contains("is absolute"), "{err}");
    assert!(!target.exists());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let outside = work.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    let layer = Layer::new()
        .symlink("evil", outside.to_str().unwrap())
        .file("evil/planted", "x")
        .write(&work.path().join("l.tar"));
    let err = apply_layer(&root, &layer).unwrap_err().to_string();
    assert!(err.contains("symlink"), "{err}");
    assert!(!outside.join("planted").exists());

    // A relative symlink climbing out and a hard link to a path outside are refused too.
    let layer = Layer::new()
        .symlink("up", "../../..")
        .file("up/planted", "x")
        .write(&work.path().join("l2.tar"));
    assert!(apply_layer(&root, &layer).is_err());
    let layer = Layer::new()
        .hardlink("passwd", "../../etc/passwd")
        .write(&work.path().join("l3.tar"));
    let err = apply_layer(&root, &layer).unwrap_err().to_string();
    assert!(err.contains("contains `..`"), "{err}");
}

#[test]
fn a_whiteout_through_a_symlink_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let outside = work.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "keep").unwrap();
    symlink(&outside, root.join("evil")).unwrap();
    let layer = Layer::new()
        .file("evil/.wh.victim", "")
        .write(&work.path().join("l.tar"));
    assert!(apply_layer(&root, &layer).is_err());
    assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
}

#[test]
fn garbage_is_a_read_error() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("junk");
    fs::write(&path, [0x1f, 0x8b, 0, 1, 2, 3]).unwrap();
    assert!(matches!(
        apply_layer(work.path(), &path),
        Err(LayerError::Read { .. })
    ));
}

mod confinement {
    use proptest::prelude::*;

    use super::*;

    /// Path pieces that mix normal names with every kind of escape attempt.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "b",
            "..",
            ".",
            "",
            ".wh.a",
            ".wh..",
            ".wh...",
            ".wh..wh..opq",
        ])
    }

    fn path() -> impl Strategy<Value = String> {
        (any::<bool>(), prop::collection::vec(piece(), 1..4)).prop_map(|(absolute, parts)| {
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        File(String),
        Dir(String),
        Symlink(String, String),
        OutsideSymlink(String),
        Hardlink(String, String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            path().prop_map(Op::File),
            path().prop_map(Op::Dir),
            (path(), path()).prop_map(|(p, t)| Op::Symlink(p, t)),
            path().prop_map(Op::OutsideSymlink),
            (path(), path()).prop_map(|(p, t)| Op::Hardlink(p, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever a layer contains, applying it never touches anything outside
        /// the root (and never panics).
        #[test]
        fn layers_never_write_outside_the_root(ops in prop::collection::vec(op(), 1..8)) {
            let work = tempfile::tempdir().unwrap();
            let root = work.path().join("root");
            let outside = work.path().join("outside");
            fs::create_dir_all(root.join("a")).unwrap();
            fs::create_dir(&outside).unwrap();
            fs::write(outside.join("a"), "keep").unwrap();
            let outside_text = outside.to_str().unwrap().to_owned();
            let mut layer = Layer::new();
            for op in &ops {
                match op {
                    Op::File(p) => { layer.file(p, "x"); }
                    Op::Dir(p) => { layer.dir(p); }
                    Op::Symlink(p, t) => { layer.symlink(p, t); }
                    Op::OutsideSymlink(p) => { layer.symlink(p, &outside_text); }
                    Op::Hardlink(p, t) => { layer.hardlink(p, t); }
                }
            }
            let path = layer.write(&work.path().join("l.tar"));
            let _ = apply_layer(&root, &path);
            let names: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(names, vec![std::ffi::OsString::from("a")]);
            prop_assert_eq!(fs::read_to_string(outside.join("a")).unwrap(), "keep");
            let siblings: Vec<_> = fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(siblings.len(), 3, "{:?}", siblings);
        }
    }
}

#[test]
fn whiteouts_of_dot_names_are_refused() {
    for name in [".wh..", ".wh...", "a/.wh...", "a/.wh.."] {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(work.path().join("sentinel"), "keep").unwrap();
        let layer = Layer::new()
            .file(name, "")
            .write(&work.path().join("l.tar"));
        let err = apply_layer(&root, &layer).unwrap_err().to_string();
        assert!(err.contains("whiteout"), "{name}: {err}");
        assert!(root.join("a").is_dir(), "{name}");
        assert_eq!(
            fs::read_to_string(work.path().join("sentinel")).unwrap(),
            "keep"
        );
    }
}

#[test]
fn non_directories_cannot_replace_the_root() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let layer = Layer::new()
        .file("./", "x")
        .write(&work.path().join("l.tar"));
    assert!(apply_layer(&root, &layer).is_err());
    assert!(root.is_dir());
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    io::Write::write_all(&mut e, bytes).unwrap();
    e.finish().unwrap()
}

/// A gzip layer (concatenated members, so it is built fast) of one file of `size`
/// bytes: zeros, the last ones `tail`. A GiB is about a MiB compressed.
#[allow(clippy::cast_possible_truncation)]
fn zeros_gz(path: &Path, name: &str, size: u64, tail: &[u8]) -> PathBuf {
    const CHUNK: u64 = 1 << 20;
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_entry_type(EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = gz(header.as_bytes());
    let zeros = gz(&vec![0u8; CHUNK as usize]);
    let body = size - tail.len() as u64;
    for _ in 0..body / CHUNK {
        out.extend_from_slice(&zeros);
    }
    let mut rest = vec![0u8; (body % CHUNK) as usize];
    rest.extend_from_slice(tail);
    let pad = (512 - size % 512) % 512;
    rest.extend(std::iter::repeat_n(0u8, pad as usize + 1024));
    out.extend_from_slice(&gz(&rest));
    fs::write(path, out).unwrap();
    path.to_path_buf()
}

/// Blocks allocated on disk, in bytes.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_tar_bomb_is_refused_with_a_clear_error_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    // 1 GiB of zeros: about 1 MiB of gzip.
    let bomb = zeros_gz(&work.path().join("bomb.tar.gz"), "big", 1 << 30, b"");
    assert!(fs::metadata(&bomb).unwrap().len() < 2 << 20);
    let err = apply_layer_within(&root, &bomb, &mut Budget::new(64 << 20, 1000)).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, LayerError::Budget { what: "bytes", .. }),
        "{msg}"
    );
    assert!(
        msg.contains("67108864 bytes") && msg.contains("HEARTH_PACK_MAX_BYTES"),
        "{msg}"
    );
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "nothing written");
    // Too many entries, each tiny.
    let mut many = Layer::new();
    for i in 0..20 {
        many.file(&format!("f{i}"), "x");
    }
    let many = many.write(&work.path().join("many.tar"));
    let err = apply_layer_within(&root, &many, &mut Budget::new(1 << 20, 10)).unwrap_err();
    assert!(
        matches!(
            err,
            LayerError::Budget {
                what: "entries",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "nothing written");
    // The budget spans layers: two layers each within it, together over.
    let half = zeros_gz(&work.path().join("half.tar.gz"), "half", 40 << 20, b"");
    let mut budget = Budget::new(64 << 20, 1000);
    apply_layer_within(&root, &half, &mut budget).unwrap();
    let again = zeros_gz(&work.path().join("again.tar.gz"), "again", 40 << 20, b"");
    let err = apply_layer_within(&root, &again, &mut budget).unwrap_err();
    assert!(matches!(err, LayerError::Budget { .. }), "{err}");
    assert!(!root.join("again").exists());
}

#[test]
fn a_lying_size_is_caught_while_copying_and_the_partial_file_removed() {
    // Declared sizes pass the first check; the contents are counted as written.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let layer = zeros_gz(&work.path().join("l.tar.gz"), "f", 3 << 20, b"");
    let mut budget = Budget::new(4 << 20, 1000);
    budget.take_bytes(2 << 20).unwrap();
    // Pass 1 sees 3 MiB declared against 2 MiB left: refused before any write.
    assert!(apply_layer_within(&root, &layer, &mut budget).is_err());
    assert!(!root.join("f").exists());
    // copy_sparse itself stops at the budget.
    let mut out = File::create(work.path().join("out")).unwrap();
    let mut small = Budget::new(1 << 20, 10);
    let data = vec![1u8; 3 << 20];
    assert!(matches!(
        copy_sparse(&mut &data[..], &mut out, &mut small),
        Err(CopyFailure::Budget(Exceeded::Bytes(_)))
    ));
}

#[test]
fn zero_runs_and_gnu_sparse_entries_stay_sparse() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    // 64 MiB of stored zeros with a marker at the end.
    let size: u64 = 64 << 20;
    zeros_gz(&work.path().join("z.tar.gz"), "zeros", size, b"tail");
    apply_layer(&root, &work.path().join("z.tar.gz")).unwrap();
    let out = root.join("zeros");
    assert_eq!(fs::metadata(&out).unwrap().len(), size);
    assert!(
        allocated(&out) < 1 << 20,
        "inflated: {} bytes",
        allocated(&out)
    );
    let mut tail = [0u8; 4];
    let mut f = File::open(&out).unwrap();
    f.seek(SeekFrom::End(-4)).unwrap();
    f.read_exact(&mut tail).unwrap();
    assert_eq!(&tail, b"tail");

    // A GNU sparse entry (type 'S'), as `tar --sparse` writes it: 64 MiB, data only
    // in two 512-byte chunks at 0 and at 32 MiB. (Before this change such entries
    // were skipped as unsupported: the file was missing from the image.)
    let real: u64 = 64 << 20;
    let mut header = tar::Header::new_gnu();
    header.set_path("sparse").unwrap();
    header.set_entry_type(EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(1024);
    {
        let gnu = header.as_gnu_mut().unwrap();
        let octal = |field: &mut [u8], v: u64| {
            let s = format!("{v:0width$o}", width = field.len() - 1);
            field[..s.len()].copy_from_slice(s.as_bytes());
            field[s.len()] = 0;
        };
        octal(&mut gnu.realsize, real);
        octal(&mut gnu.sparse[0].offset, 0);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.sparse[1].offset, 32 << 20);
        octal(&mut gnu.sparse[1].numbytes, 512);
        // GNU tar ends the map with an empty chunk at the real size (the final hole).
        octal(&mut gnu.sparse[2].offset, real);
        octal(&mut gnu.sparse[2].numbytes, 0);
    }
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    let mut data = vec![b'a'; 512];
    data.extend(vec![b'b'; 512]);
    tar.append(&header, &data[..]).unwrap();
    fs::write(work.path().join("s.tar"), tar.into_inner().unwrap()).unwrap();
    apply_layer(&root, &work.path().join("s.tar")).unwrap();
    let out = root.join("sparse");
    assert_eq!(fs::metadata(&out).unwrap().len(), real);
    assert!(
        allocated(&out) < 1 << 20,
        "inflated: {} bytes",
        allocated(&out)
    );
    let bytes = fs::read(&out).unwrap();
    assert!(bytes[..512].iter().all(|b| *b == b'a'));
    assert!(bytes[32 << 20..(32 << 20) + 512].iter().all(|b| *b == b'b'));
    assert_eq!(bytes.iter().filter(|b| **b != 0).count(), 1024);
}
