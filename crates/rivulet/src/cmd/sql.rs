//! `rivulet sql`: the interactive shell ([`crate::shell`]) and `explain`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::shell::{self, ShellArgs};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SqlArgs {
    #[command(subcommand)]
    command: Option<SqlCommand>,
    #[command(flatten)]
    shell: ShellArgs,
}

#[derive(Subcommand)]
enum SqlCommand {
    /// The interactive shell (the same as `rivulet sql` alone).
    Shell(ShellArgs),
    /// Print the streaming plan of a SQL file (source, watermark, operators, state, sinks);
    /// errors point at line:column.
    Explain {
        /// The `.sql` file (CREATE SOURCE, CREATE SINK, SET, INSERT INTO ... SELECT).
        file: PathBuf,
        /// Print the engine plan as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

impl SqlArgs {
    /// Whether this runs the interactive shell.
    pub fn is_shell(&self) -> bool {
        matches!(self.command, None | Some(SqlCommand::Shell(_)))
    }
}

pub async fn run(args: SqlArgs) -> Result<()> {
    match args.command {
        None => shell::run(args.shell).await,
        Some(SqlCommand::Shell(shell_args)) => shell::run(shell_args).await,
        Some(SqlCommand::Explain { file, json }) => {
            let script = rivulet_sql::compile_file(&file)?;
            if json {
                // One INSERT: the plan, as always; several: the job with its branch plans.
                match script.single_plan() {
                    Some(plan) => println!("{}", serde_json::to_string_pretty(plan)?),
                    None => println!("{}", serde_json::to_string_pretty(&script.job())?),
                }
            } else {
                print!("{}", rivulet_sql::explain(&script));
            }
            Ok(())
        }
    }
}
