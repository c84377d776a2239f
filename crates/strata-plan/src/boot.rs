//! The full-host drill: a restored root filesystem becomes a disk image
//! (`mke2fs -d`, no mounts), its own kernel boots it in a throwaway VM
//! ([`strata_vm`]: software emulation, no network but loopback forwards),
//! and the drill waits until the declared services answer.
//!
//! The disk gets the identity the restored `/etc/fstab` expects for `/`
//! (`UUID=` → `mke2fs -U`, `LABEL=` → `-L`), so the system boots as it
//! would on a replacement disk. QEMU is recorded as one of the drill's
//! process groups and dies with it (parent-death signal), so a `kill -9`
//! of the drill leaves no VM behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the boot probe found.
pub struct Booted {
    /// Pass/fail message.
    pub result: std::result::Result<String, String>,
    /// The negative control (Ok = it went red, as it must): a guest port
    /// nothing listens on is not taken for an answer, although QEMU itself
    /// accepts on every forwarded port.
    pub control: Option<std::result::Result<String, String>>,
    /// QEMU start to verdict, seconds.
    pub boot_secs: f64,
    /// The console's last lines.
    pub console_tail: String,
}

/// The newest `boot/vmlinuz-VERSION` of `tree` and its initrd, if any.
pub fn kernel_of(tree: &Path) -> Option<(PathBuf, Option<PathBuf>, String)> {
    let boot = tree.join("boot");
    let mut versions: Vec<String> = std::fs::read_dir(&boot)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .collect();
    versions.sort_by_key(|a| version_key(a));
    let v = versions.pop()?;
    let initrd = boot.join(format!("initrd.img-{v}"));
    Some((
        boot.join(format!("vmlinuz-{v}")),
        initrd.exists().then_some(initrd),
        v,
    ))
}

/// "6.1.0-57-amd64" → [6, 1, 0, 57] for ordering.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// `mke2fs` options that give the new disk the root's identity from the
/// restored `/etc/fstab`.
pub fn root_identity(tree: &Path) -> Vec<String> {
    let Ok(fstab) = std::fs::read_to_string(tree.join("etc/fstab")) else {
        return vec!["-L".into(), "root".into()];
    };
    for line in fstab.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 2 && !f[0].starts_with('#') && f[1] == "/" {
            if let Some(u) = f[0].strip_prefix("UUID=") {
                return vec!["-U".into(), u.to_string()];
            }
            if let Some(l) = f[0].strip_prefix("LABEL=") {
                return vec!["-L".into(), l.to_string()];
            }
        }
    }
    vec!["-L".into(), "root".into()]
}

/// What the probe waits for.
pub struct Wants<'a> {
    pub ssh: bool,
    pub http: &'a [u16],
    pub console: Option<&'a str>,
    pub timeout: Duration,
    pub memory_mib: u32,
}

/// Boots `image` with `kernel`/`initrd` in `work` and waits for `w`.
/// `spawn` starts QEMU (the drill records its process group).
pub fn boot_and_wait(
    kernel: &Path,
    initrd: Option<&Path>,
    image: &Path,
    work: &Path,
    w: &Wants,
    spawn: strata_vm::Spawner,
    log: &mut dyn FnMut(&str),
) -> Booted {
    // guest port 9 (discard): nothing listens there; the control
    const NOBODY: u16 = 9;
    let mut spec = strata_vm::Spec::new(kernel, initrd, image, work);
    spec.memory_mib = w.memory_mib;
    spec.forward = Vec::new();
    if w.ssh {
        spec.forward.push(22);
    }
    spec.forward.extend(w.http.iter().copied());
    spec.forward.push(NOBODY);
    let t = Instant::now();
    let mut vm = match strata_vm::Vm::boot(&spec, spawn) {
        Ok(vm) => vm,
        Err(e) => {
            return Booted {
                result: Err(format!("the VM did not start: {e}")),
                control: None,
                boot_secs: 0.0,
                console_tail: String::new(),
            }
        }
    };
    log(&format!(
        "booting {} in a VM (pid {}, {} MiB, no network but loopback forwards)",
        kernel.display(),
        vm.pid(),
        w.memory_mib
    ));
    let left = |t: &Instant| w.timeout.saturating_sub(t.elapsed());
    let mut seen = Vec::new();
    let mut result = Ok(());
    if let Some(text) = w.console {
        match vm.wait_console(text, left(&t)) {
            Ok(()) => seen.push(format!(
                "console showed {text:?} after {:.0} s",
                t.elapsed().as_secs_f64()
            )),
            Err(e) => result = Err(why(e, w.timeout)),
        }
    }
    if result.is_ok() && w.ssh {
        match vm.wait_banner(22, b"SSH-", left(&t)) {
            Ok(()) => seen.push(format!(
                "ssh answered after {:.0} s",
                t.elapsed().as_secs_f64()
            )),
            Err(e) => result = Err(why(e, w.timeout)),
        }
    }
    for port in w.http {
        if result.is_err() {
            break;
        }
        match vm.wait_http(*port, "/", left(&t)) {
            Ok(status) if status < 500 => seen.push(format!(
                "HTTP on port {port} answered {status} after {:.0} s",
                t.elapsed().as_secs_f64()
            )),
            Ok(status) => {
                result = Err(format!(
                    "HTTP on guest port {port} answered {status}, a server error"
                ))
            }
            Err(e) => {
                let mut m = why(e, w.timeout);
                if !seen.is_empty() {
                    m.push_str(&format!(
                        " although the system is up ({}): is its service missing or failing?",
                        seen.join("; ")
                    ));
                }
                result = Err(m)
            }
        }
    }
    let boot_secs = t.elapsed().as_secs_f64();
    // The control runs once the guest is up: its network works, so a
    // silent port is the check going red, not a VM still booting.
    let control = result
        .is_ok()
        .then(|| match vm.wait_http(NOBODY, "/", Duration::from_secs(3)) {
            Ok(s) => Err(format!(
                "guest port {NOBODY}, where nothing listens, was taken as answering ({s})"
            )),
            Err(_) => Ok(format!(
                "guest port {NOBODY}, where nothing listens, is reported as not answering"
            )),
        });
    let console_tail = vm.console_tail(15);
    vm.kill();
    Booted {
        result: result.map(|()| seen.join("; ")),
        control,
        boot_secs,
        console_tail,
    }
}

/// A failed wait in the report's words (the console goes to the cast).
fn why(e: strata_vm::Error, timeout: Duration) -> String {
    match e {
        strata_vm::Error::Timeout { what, .. } => format!(
            "{what} did not happen within {} s of boot",
            timeout.as_secs()
        ),
        strata_vm::Error::Exited { what, status, .. } => {
            format!("the VM stopped ({status}) before {what}")
        }
        e => e.to_string().lines().next().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_root_identity() {
        let d = std::env::temp_dir().join(format!("strata-boot-{}", std::process::id()));
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(
            d.join("etc/fstab"),
            "# <fs> <mount>\nUUID=0a1b-2c /boot/efi vfat defaults 0 1\nUUID=1234-abcd / ext4 errors=remount-ro 0 1\n",
        )
        .unwrap();
        assert_eq!(root_identity(&d), ["-U", "1234-abcd"]);
        std::fs::write(d.join("etc/fstab"), "LABEL=sys / ext4 rw 0 1\n").unwrap();
        assert_eq!(root_identity(&d), ["-L", "sys"]);
        std::fs::remove_file(d.join("etc/fstab")).unwrap();
        assert_eq!(root_identity(&d), ["-L", "root"]);
        std::fs::create_dir_all(d.join("boot")).unwrap();
        for f in [
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-6.1.0-57-amd64",
            "initrd.img-6.1.0-57-amd64",
        ] {
            std::fs::write(d.join("boot").join(f), b"x").unwrap();
        }
        let (k, i, v) = kernel_of(&d).unwrap();
        assert_eq!(v, "6.1.0-57-amd64");
        assert!(k.ends_with("vmlinuz-6.1.0-57-amd64"));
        assert!(i.unwrap().ends_with("initrd.img-6.1.0-57-amd64"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
