//! The OpenZFS lane: `strata snapshot` and `strata replicate` on real
//! OpenZFS 2.x inside a throwaway VM (Debian bookworm, zfs-dkms from
//! bookworm-backports; the image is built by `scripts/vm-image.sh` and cached
//! outside the clone). `cargo test --release -p strata-cli --test cli openzfs::`
//! runs exactly these (and builds the image when it is not cached).
//!
//! Each test boots its own VM with its own raw disks (host files, so the
//! host can read what a pool wrote), copies this build's strata binary in,
//! and drives it over ssh; the VM is killed when the test ends.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use strata_vm::{Spec, Ssh, Vm};

use crate::util::strata_bin;

mod replication;
mod sanoid;
mod syncoid_cases;

/// The image directory: `STRATA_VM_IMAGE`, or what `scripts/vm-image.sh`
/// prints (building the image once if it is not cached).
pub fn image() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("STRATA_VM_IMAGE") {
            return PathBuf::from(d);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm-image.sh");
        let out = std::process::Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// A booted VM with ssh as root, and its disks on the host.
pub struct Guest {
    pub vm: Vm,
    pub ssh: Ssh,
    pub dir: PathBuf,
    pub disks: Vec<PathBuf>,
    /// Seconds from QEMU's start to the first ssh login.
    pub boot_secs: f64,
}

impl Guest {
    /// Boots the image with `disks` (name, size in MiB) as /dev/vdb onwards,
    /// waits for ssh, and installs this build's strata as
    /// /usr/local/bin/strata (with `syncoid` and `sanoid` links to it under
    /// /usr/local/lib/strata, kept off PATH so Debian's sanoid stays itself).
    pub fn boot(name: &str, disks: &[(&str, u64)]) -> Guest {
        let img = image();
        let dir = std::env::temp_dir().join(format!("strata-vm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = Spec::new(
            &img.join("vmlinuz"),
            Some(&img.join("initrd.img")),
            &img.join("root.img"),
            &dir,
        );
        spec.memory_mib = 1536;
        let mut paths = Vec::new();
        for (d, mib) in disks {
            let p = dir.join(format!("{d}.img"));
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(mib << 20).unwrap();
            paths.push(p);
        }
        // This build's strata travels on a small ext4 disk of its own, the
        // last one (ssh under software emulation moves ~3 MB/s).
        let bin_dir = dir.join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::copy(strata_bin(), bin_dir.join("strata")).unwrap();
        let bin_img = dir.join("bin.img");
        let size = std::fs::metadata(bin_dir.join("strata")).unwrap().len() / (1 << 20) * 2 + 16;
        crate::snapshot::must(
            "mke2fs",
            &[
                "-q",
                "-t",
                "ext4",
                "-d",
                bin_dir.to_str().unwrap(),
                bin_img.to_str().unwrap(),
                &format!("{size}M"),
            ],
        );
        spec.disks = paths.clone();
        spec.disks.push(bin_img);
        let bin_dev = format!("/dev/vd{}", (b'b' + paths.len() as u8) as char);
        let mut vm = Vm::boot(&spec, &mut strata_vm::spawn_default).expect("boot the VM");
        let ssh = Ssh::new(vm.port(22), &img.join("id_ed25519"), "root");
        ssh.wait(&mut vm, Duration::from_secs(300))
            .expect("the VM answers on ssh");
        let boot_secs = vm.uptime().as_secs_f64();
        eprintln!("[{name}] VM up after {boot_secs:.1} s");
        let g = Guest {
            vm,
            ssh,
            dir,
            disks: paths,
            boot_secs,
        };
        g.sh(&format!(
            "set -e; mkdir -p /mnt/strata-bin /usr/local/lib/strata; mount -o ro {bin_dev} /mnt/strata-bin
             install -m 755 /mnt/strata-bin/strata /usr/local/bin/strata; umount /mnt/strata-bin
             ln -sf /usr/local/bin/strata /usr/local/lib/strata/syncoid
             ln -sf /usr/local/bin/strata /usr/local/lib/strata/sanoid; modprobe zfs"
        ));
        g
    }

    /// Runs a shell script as root in the VM; its output whatever its status.
    pub fn run(&self, script: &str) -> Output {
        self.ssh.run(script).expect("ssh into the VM")
    }

    /// Runs a shell script as root; its stdout. Panics with its stderr (and
    /// the console's tail) if it fails.
    pub fn sh(&self, script: &str) -> String {
        let o = self.run(script);
        assert!(
            o.status.success(),
            "in the VM: {script}\nexit: {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Like [`Guest::sh`] for a script that must fail; its stderr+stdout.
    pub fn sh_fails(&self, script: &str) -> String {
        let o = self.run(script);
        assert!(
            !o.status.success(),
            "in the VM, this should have failed: {script}\nstdout: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        )
    }

    /// Time a step takes, for the figures the notes quote.
    pub fn timed<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        eprintln!("[vm] {what}: {:.1} s", t.elapsed().as_secs_f64());
        r
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.vm.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `name<TAB>guid` of every snapshot under `root`, names made relative to it.
pub fn snapshot_guids(g: &Guest, root: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = g
        .sh(&format!(
            "zfs list -H -p -o name,guid -t snapshot -r {root}"
        ))
        .lines()
        .filter_map(|l| {
            let (n, guid) = l.split_once('\t')?;
            Some((n.strip_prefix(root)?.to_string(), guid.to_string()))
        })
        .collect();
    v.sort();
    v
}

/// Whether `needle` occurs anywhere in the host file `path`.
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let data = std::fs::read(path).unwrap();
    data.windows(needle.len()).any(|w| w == needle)
}
