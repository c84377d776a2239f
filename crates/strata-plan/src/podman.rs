//! A podman volume as a source: its export, how it was deployed, and its
//! containers held still while it is read.
//!
//! For `volume = "myapp-data"` the snapshot gets
//!
//! | path under `strata-sources/podman/` | what |
//! |---|---|
//! | `myapp-data.tar` | `podman volume export` |
//! | `myapp-data.volume.json` | `podman volume inspect` |
//! | `myapp-data.containers.json` | `podman container inspect` of every container using it |
//! | `myapp-data.files/<absolute path>` | the files that deploy it: the quadlet unit (`PODMAN_SYSTEMD_UNIT` label → `<name>.container` in the quadlet directories) and its `EnvironmentFile=`s, the compose files (`com.docker.compose.project.config_files`) and the project's `.env`, plus any `files` the plan lists |
//!
//! With `quiesce = "pause"` (or `"stop"`), the running containers that use
//! the volume are paused (stopped) just before the export starts and
//! unpaused (started) as soon as it ends — also when it fails, when strata
//! is interrupted, and, after a `kill -9`, by the next run (each held
//! container is recorded with [`crate::procs::record_undo`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use strata_repo::backup::StreamSource;

use crate::config::Quiesce;
use crate::sources::CommandStream;

fn podman(args: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = std::iter::once("podman")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let o = crate::sources::child_command(&argv)
        .output()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "podman {} failed: {}",
            args.join(" "),
            crate::sources::last_line(&String::from_utf8_lossy(&o.stderr))
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Names of the containers that mount `volume` (running ones only, or all).
fn containers(volume: &str, running_only: bool) -> Result<Vec<String>, String> {
    let filter = format!("volume={volume}");
    let mut args = vec!["ps", "--filter", &filter, "--format", "{{.Names}}"];
    if !running_only {
        args.insert(1, "--all");
    }
    Ok(podman(&args)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The quadlet directories, system-wide first.
const QUADLET_DIRS: &[&str] = &["/etc/containers/systemd", "/usr/share/containers/systemd"];

/// Files that deploy `container`, found from its labels.
fn deploy_files(container: &str, quadlet_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let labels: std::collections::BTreeMap<String, String> = podman(&[
        "container",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        container,
    ])
    .ok()
    .and_then(|s| serde_json::from_str(s.trim()).ok())
    .unwrap_or_default();
    let mut out = Vec::new();
    if let Some(unit) = labels.get("PODMAN_SYSTEMD_UNIT") {
        let stem = unit.trim_end_matches(".service");
        for d in quadlet_dirs {
            let q = d.join(format!("{stem}.container"));
            if q.is_file() {
                // its EnvironmentFile= lines too
                for l in std::fs::read_to_string(&q).unwrap_or_default().lines() {
                    if let Some(f) = l.trim().strip_prefix("EnvironmentFile=") {
                        let f = PathBuf::from(f.trim());
                        let f = if f.is_absolute() { f } else { d.join(f) };
                        out.push(f);
                    }
                }
                out.push(q);
            }
        }
        for d in ["/etc/systemd/system", "/usr/lib/systemd/system"] {
            let u = Path::new(d).join(unit);
            if u.is_file() {
                out.push(u);
            }
        }
    }
    let wd = labels
        .get("com.docker.compose.project.working_dir")
        .map(PathBuf::from);
    if let Some(files) = labels.get("com.docker.compose.project.config_files") {
        for f in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let p = PathBuf::from(f);
            out.push(match (&wd, p.is_absolute()) {
                (Some(w), false) => w.join(p),
                _ => p,
            });
        }
    }
    if let Some(w) = wd {
        out.push(w.join(".env"));
    }
    out.retain(|p| p.is_file());
    out
}

/// A file stored as it is at backup time.
struct FileStream {
    path: Vec<String>,
    file: PathBuf,
}

impl StreamSource for FileStream {
    fn path(&self) -> Vec<String> {
        self.path.clone()
    }
    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        Ok(Box::new(
            std::fs::File::open(&self.file).map_err(|e| format!("{}: {e}", self.file.display()))?,
        ))
    }
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The export, with its containers held still around it.
struct Export {
    inner: CommandStream,
    volume: String,
    quiesce: Quiesce,
    /// Containers to hold (running ones that use the volume, or the plan's).
    containers: Vec<String>,
    held: Vec<String>,
}

impl Export {
    fn undo_argv(&self, c: &str) -> Vec<String> {
        let verb = match self.quiesce {
            Quiesce::Stop => "start",
            _ => "unpause",
        };
        vec!["podman".into(), verb.into(), c.into()]
    }

    /// Resumes what was held; the first failure, if any.
    fn release(&mut self) -> Result<(), String> {
        let mut err = Ok(());
        for c in std::mem::take(&mut self.held) {
            let argv = self.undo_argv(&c);
            match podman(&argv[1..].iter().map(String::as_str).collect::<Vec<_>>()) {
                Ok(_) => crate::procs::clear_undo(&format!("podman-{c}")),
                Err(e) if err.is_ok() => {
                    err = Err(format!(
                        "container {c} could not be resumed: {e} — run `{}`",
                        argv.join(" ")
                    ))
                }
                Err(_) => {}
            }
        }
        err
    }
}

impl StreamSource for Export {
    fn path(&self) -> Vec<String> {
        self.inner.path()
    }

    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        if self.quiesce != Quiesce::None {
            let running = containers(&self.volume, true)?;
            for c in self
                .containers
                .iter()
                .filter(|c| running.contains(c))
                .cloned()
                .collect::<Vec<_>>()
            {
                let verb = match self.quiesce {
                    Quiesce::Stop => vec!["stop", "--time", "60"],
                    _ => vec!["pause"],
                };
                // recorded first: a kill -9 right after the pause still gets it resumed
                crate::procs::record_undo(&format!("podman-{c}"), &self.undo_argv(&c));
                let mut args = verb.clone();
                args.push(&c);
                if let Err(e) = podman(&args) {
                    crate::procs::clear_undo(&format!("podman-{c}"));
                    let _ = self.release();
                    return Err(e);
                }
                self.held.push(c);
            }
        }
        match self.inner.open() {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.release();
                Err(e)
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let done = self.inner.finish();
        let released = self.release();
        done.and(released)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

fn spath(volume: &str, tail: &str) -> Vec<String> {
    vec![
        crate::sources::DIR.to_string(),
        "podman".to_string(),
        format!("{volume}{tail}"),
    ]
}

/// The streams of a podman volume source (see the module's table).
pub fn streams(
    volume: &str,
    quiesce: Quiesce,
    listed: &Option<Vec<String>>,
    files: &[PathBuf],
) -> Result<Vec<Box<dyn StreamSource>>, String> {
    let all = containers(volume, false)?;
    let mut v: Vec<Box<dyn StreamSource>> = Vec::new();
    v.push(Box::new(Export {
        inner: CommandStream::new(
            format!("podman volume {volume}"),
            spath(volume, ".tar"),
            vec![
                "podman".into(),
                "volume".into(),
                "export".into(),
                volume.to_string(),
            ],
            vec![],
        ),
        volume: volume.to_string(),
        quiesce,
        containers: listed.clone().unwrap_or_else(|| all.clone()),
        held: Vec::new(),
    }));
    v.push(Box::new(CommandStream::new(
        format!("podman volume {volume} (inspect)"),
        spath(volume, ".volume.json"),
        ["podman", "volume", "inspect", volume]
            .map(String::from)
            .to_vec(),
        vec![],
    )));
    if !all.is_empty() {
        let mut argv: Vec<String> = ["podman", "container", "inspect"]
            .map(String::from)
            .to_vec();
        argv.extend(all.iter().cloned());
        v.push(Box::new(CommandStream::new(
            format!("podman volume {volume} (containers)"),
            spath(volume, ".containers.json"),
            argv,
            vec![],
        )));
    }
    let mut quadlet: Vec<PathBuf> = QUADLET_DIRS.iter().map(PathBuf::from).collect();
    if let Some(h) = std::env::var_os("HOME") {
        quadlet.push(PathBuf::from(h).join(".config/containers/systemd"));
    }
    let mut found: Vec<PathBuf> = files.to_vec();
    for c in &all {
        found.extend(deploy_files(c, &quadlet));
    }
    found.sort();
    found.dedup();
    for f in found {
        let mut path = spath(volume, ".files");
        path.extend(f.components().filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        }));
        v.push(Box::new(FileStream { path, file: f }));
    }
    Ok(v)
}
