//! The command line: argument parsing and dispatch. The only module that prints or exits.
//!
//! Exit codes: 0 success, 1 bad input (recipe, data or model files), 2 an internal error (a bug),
//! 3 the environment (out of memory, disk full, no CUDA, the store unusable).

mod cache;
mod check;
mod fmt;
mod import;
mod law;
pub mod plan;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for a user error: the recipe or an input (data, model files) is wrong.
pub const EXIT_USER: i32 = 1;
/// Exit code for an internal error: a bug in cptc.
pub const EXIT_INTERNAL: i32 = 2;
/// Exit code for the environment: out of memory, disk full, no CUDA, libtorch missing.
pub const EXIT_ENVIRONMENT: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "cptc",
    version,
    about = "Continued pretraining, written as a recipe: check, plan and run it, cached",
    long_about = "cptc compiles a declarative `.cpt` recipe (vocabulary expansion, replay mixture with a \
                  ratio ramp, LR schedule, evaluation, scaling-law sweeps, long context) into a stage \
                  graph and runs it with every intermediate artifact cached.",
    after_help = "Exit codes: 0 success; 1 bad input (the recipe, a data or model file); 2 an internal \
                  error (a bug in cptc); 3 the environment (out of memory, disk full, no CUDA, \
                  libtorch missing, the store unusable)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check recipes: syntax, names, types and units, shares, files; report every error.
    Check {
        /// Recipe files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` draws source snippets; `short` prints one line per error.
        #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
        format: DiagFormat,
    },
    /// Rewrite recipes in the canonical layout (comments kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Show the stage graph: what is cached, what will run, tokens and FLOPs.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// The artifact store.
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
        /// Effective device throughput for time estimates, in TFLOP/s [default: 100 with a
        /// CUDA GPU, else a CPU estimate from the core count].
        #[arg(long)]
        tflops: Option<f64>,
        #[command(flatten)]
        stages: StageSelection,
        #[command(flatten)]
        topology: TopologyArgs,
    },
    /// Run a recipe: every stage not already cached, in dependency order.
    Run {
        file: PathBuf,
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
        #[command(flatten)]
        stages: StageSelection,
        /// Say what would run and why, run nothing.
        #[arg(long)]
        dry_run: bool,
        /// After a stage fails, keep running the stages that do not depend on it.
        #[arg(long)]
        keep_going: bool,
        /// Say why each stage runs (which part of its key changed).
        #[arg(short, long)]
        verbose: bool,
        /// Checkpoint training this often (minutes; 0: after every step), so a failed or killed
        /// run resumes where it was. Results do not depend on it.
        #[arg(long, value_name = "MINUTES", default_value_t = 30.0)]
        checkpoint_minutes: f64,
        #[command(flatten)]
        topology: TopologyArgs,
    },
    /// Inspect, verify and prune the artifact store.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Convert a checkpoint into a Hugging Face model directory.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Fitted scaling laws.
    #[command(subcommand)]
    Law(LawCommand),
}

/// Where `engine = fsdp` trainings run, under torchrun's own names (not part of any key).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "FSDP topology (engine = fsdp)")]
struct TopologyArgs {
    /// Training processes on this node (one per GPU).
    #[arg(long, value_name = "N", conflicts_with = "cluster")]
    nproc_per_node: Option<u32>,
    /// Nodes in the job.
    #[arg(long, value_name = "M", conflicts_with = "cluster")]
    nnodes: Option<u32>,
    /// This node's rank, 0 to M-1.
    #[arg(long, value_name = "R", conflicts_with = "cluster")]
    node_rank: Option<u32>,
    /// The c10d rendezvous, HOST:PORT (the same on every node).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "cluster")]
    rdzv_endpoint: Option<String>,
    /// A YAML file holding the same keys (nproc-per-node, nnodes, node-rank, rdzv-endpoint).
    #[arg(long, value_name = "FILE.yaml")]
    cluster: Option<PathBuf>,
}

impl TopologyArgs {
    fn topology(self) -> Result<crate::fsdp::Topology, crate::fsdp::TopologyError> {
        if let Some(file) = &self.cluster {
            return crate::fsdp::Topology::from_file(file);
        }
        let d = crate::fsdp::Topology::SINGLE;
        let topology = crate::fsdp::Topology {
            nproc_per_node: self.nproc_per_node.unwrap_or(d.nproc_per_node),
            nnodes: self.nnodes.unwrap_or(d.nnodes),
            node_rank: self.node_rank.unwrap_or(d.node_rank),
            rdzv_endpoint: self.rdzv_endpoint,
        };
        topology.validate()?;
        Ok(topology)
    }
}

/// Which stages `plan` and `run` consider, and which they (re)run.
#[derive(Debug, clap::Args)]
struct StageSelection {
    /// Only these stages and what they need (repeatable).
    #[arg(long, value_name = "STAGE")]
    only: Vec<String>,
    /// These stages and everything downstream of them rerun (repeatable).
    #[arg(long, value_name = "STAGE")]
    from: Vec<String>,
    /// These stages rerun even if cached (repeatable).
    #[arg(long, value_name = "STAGE")]
    force: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum LawCommand {
    /// Print the parameters and fit quality of a recipe's fitted laws, and its chosen ratio.
    Show {
        file: PathBuf,
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// List artifacts.
    Ls {
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
    },
    /// Re-hash every artifact against its meta.json.
    Verify {
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
        /// Remove corrupt artifacts (they rerun next time).
        #[arg(long)]
        fix: bool,
    },
    /// Remove artifacts that the given recipes no longer use.
    Gc {
        /// Recipes whose cached stages are kept.
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        #[arg(long, default_value = ".cptc")]
        store: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum PlanFormat {
    Text,
    Dot,
    Json,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import a GGUF file (llama.cpp) as a Hugging Face Llama directory.
    Gguf {
        /// The `.gguf` file.
        file: PathBuf,
        /// The directory to create.
        out_dir: PathBuf,
        /// Weight dtype of model.safetensors.
        #[arg(long, value_enum, default_value_t = Dtype::F16)]
        dtype: Dtype,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DiagFormat {
    Human,
    Short,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Dtype {
    F16,
    Bf16,
    F32,
}

/// Whether diagnostics on stderr may use colour.
pub(crate) fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Terminal width for diagnostics; a fixed width off a terminal keeps output stable.
pub(crate) fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}

/// A diagnostic as every command shows one: colour when wanted, [`width`] columns, a newline.
pub(crate) fn report(d: &dyn miette::Diagnostic) -> String {
    let theme = if color() { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
    let mut out = String::new();
    if miette::GraphicalReportHandler::new_themed(theme).with_width(width()).render_report(&mut out, d).is_err() {
        out = d.to_string();
    }
    out.push('\n');
    out
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::data::shard::raise_open_file_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { EXIT_USER } else { 0 };
        }
    };
    match cli.command {
        Command::Check { files, format } => check::run(&files, format),
        Command::Fmt { files, check } => fmt::run(&files, check),
        Command::Import(ImportCommand::Gguf { file, out_dir, dtype }) => import::run(&file, &out_dir, dtype),
        Command::Plan { file, format, store, tflops, stages: StageSelection { only, from, force }, topology } => {
            let topology = match topology.topology() {
                Ok(t) => t,
                Err(e) => {
                    eprint!("{}", report(&e));
                    return EXIT_USER;
                }
            };
            let tflops = match tflops {
                Some(t) if !(t.is_finite() && t > 0.0) => {
                    eprintln!("error: --tflops must be a positive number of TFLOP/s, not {t}");
                    return EXIT_USER;
                }
                Some(t) => t,
                None => plan::default_tflops(),
            };
            let options = crate::exec::Options { only, from, force, topology, ..Default::default() };
            plan::run(&file, &store, format, tflops, &options)
        }
        Command::Run {
            file,
            store,
            stages: StageSelection { only, from, force },
            dry_run,
            keep_going,
            verbose,
            checkpoint_minutes,
            topology,
        } => {
            let topology = match topology.topology() {
                Ok(t) => t,
                Err(e) => {
                    eprint!("{}", report(&e));
                    return EXIT_USER;
                }
            };
            let Ok(every) = std::time::Duration::try_from_secs_f64(checkpoint_minutes * 60.0) else {
                eprintln!("error: --checkpoint-minutes must be a number of minutes, 0 or more");
                return EXIT_USER;
            };
            let options = crate::exec::Options {
                only,
                from,
                force,
                dry_run,
                keep_going,
                checkpoint_every: Some(every),
                topology,
            };
            run::run(&file, &store, &options, verbose)
        }
        Command::Law(LawCommand::Show { file, store }) => law::show(&file, &store),
        Command::Cache(CacheCommand::Ls { store }) => cache::ls(&store),
        Command::Cache(CacheCommand::Verify { store, fix }) => cache::verify(&store, fix),
        Command::Cache(CacheCommand::Gc { recipes, store }) => cache::gc(&store, &recipes),
    }
}

/// Checks a recipe, printing its errors; `None` when it has any.
pub(crate) fn load(file: &std::path::Path) -> Option<crate::check::Recipe> {
    match crate::check::check(file, &crate::check::RealWorld) {
        Ok(recipe) => Some(recipe),
        Err(failure) => {
            eprint!("{}", crate::diag::render(&failure.errors, &failure.sources, color(), width()));
            let n = failure.errors.len();
            eprintln!("error: {} has {n} error{}", file.display(), if n == 1 { "" } else { "s" });
            None
        }
    }
}

/// A recipe checked, lowered and planned against the store at `store_dir`, or the exit code
/// after printing why not.
pub(crate) fn planned(
    file: &std::path::Path,
    store_dir: &std::path::Path,
    options: &crate::exec::Options,
) -> Result<(crate::graph::Graph, Vec<(petgraph::graph::NodeIndex, crate::exec::Status)>), i32> {
    let recipe = load(file).ok_or(EXIT_USER)?;
    let graph = crate::graph::lower(&recipe, &crate::graph::RealProbe);
    let store = crate::store::Store::at(store_dir);
    let digests = crate::store::FileDigests::persistent(store.root());
    let planned = crate::exec::plan(&graph, &store, &digests, options);
    // Only a cache: failing to remember digests costs time next time, nothing else.
    let _ = digests.save();
    match planned {
        Ok(statuses) => Ok((graph, statuses)),
        Err(e) => {
            let code = crate::exec::tier_of(&e).exit_code();
            eprint!("{}", report(&e));
            Err(code)
        }
    }
}
