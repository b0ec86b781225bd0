//! `rivulet bench`: the benchmarks of `rivulet-bench`. The processes they measure from outside
//! (a broker of their own, `rivulet up`) are this executable, started through [`SelfLauncher`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result};
use rivulet_bench::{BenchCommand, Launcher};

/// Runs `command`, printing its figures.
pub async fn run(command: BenchCommand) -> Result<()> {
    let exe = std::env::current_exe().context("locating the rivulet executable")?;
    Ok(command.run(Arc::new(SelfLauncher { exe })).await?)
}

/// Starts this executable's own `broker` and `up` subcommands (both print the ready line the
/// bench waits for).
struct SelfLauncher {
    exe: PathBuf,
}

impl Launcher for SelfLauncher {
    fn broker(&self, data_dir: &Path, fsync: &str) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--fsync", fsync]);
        c
    }

    fn up(&self, data_dir: &Path, rate: u64) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--rate", &rate.to_string()])
            // The whole default pipeline, dashboard included, on a free port.
            .args(["--dashboard-listen", "127.0.0.1:0"]);
        c
    }

    fn run(&self, flags: &[String]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(flags);
        c
    }
}
