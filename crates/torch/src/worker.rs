//! The `cptc-torch` worker's main: `stage` runs one train or eval stage for the executor,
//! `probe` says what libtorch sees. The protocol is `cptc::stages::worker`.

use std::io::Read as _;

use cptc::stages::worker::{Event, PROTOCOL, ProbeReply, Request};
use cptc::stages::{Progress, StageCtx, StageFailure};

/// Runs the command in `args` (without the program name); returns the exit status.
pub fn main(args: &[String]) -> i32 {
    cptc::data::shard::raise_open_file_limit();
    match args.first().map(String::as_str) {
        Some("stage") => stage(),
        Some("probe") => {
            let reply = ProbeReply {
                protocol: PROTOCOL,
                cuda: crate::backend::cuda_available(),
                cuda_devices: crate::backend::cuda_device_count(),
            };
            println!("{}", serde_json::to_string(&reply).unwrap_or_default());
            0
        }
        Some("--version" | "-V") => {
            println!("cptc-torch {} (protocol {PROTOCOL})", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            eprintln!(
                "cptc-torch: the libtorch worker of cptc, started by `cptc run`.\n\
                 usage: cptc-torch stage   (a request on stdin, events on stdout)\n       \
                 cptc-torch probe   (what libtorch sees)"
            );
            2
        }
    }
}

/// Reads the request, runs the stage, reports its end. Exits 0 whenever a verdict was sent.
fn stage() -> i32 {
    let progress = Progress::events(Box::new(std::io::stdout()));
    let verdict = match read_request() {
        Ok(request) => run(&request, &progress),
        Err(failure) => Event::failed(&failure),
    };
    progress.send(&verdict);
    0
}

fn read_request() -> Result<Request, StageFailure> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let request: Request = serde_json::from_str(&text).map_err(|e| {
        StageFailure::internal(format!(
            "cptc-torch cannot read its request ({e}): is it from the same build as cptc (protocol {PROTOCOL})?"
        ))
    })?;
    if request.protocol != PROTOCOL {
        return Err(StageFailure::internal(format!(
            "cptc sent protocol {}, this cptc-torch speaks {PROTOCOL}: rebuild both with `cargo build --release`",
            request.protocol
        )));
    }
    Ok(request)
}

fn run(request: &Request, progress: &Progress) -> Event {
    let ctx = StageCtx {
        id: &request.id,
        files: &request.files,
        digests: &cptc::stages::InputFiles::none(),
        parts: None,
        out: &request.out,
        inputs: request.inputs.iter().map(|i| (i.role.clone(), i.dir.clone(), i.meta.clone())).collect(),
        progress,
        resume_dir: request.resume_dir.clone(),
        checkpoint_every: request.checkpoint_every,
        topology: &cptc::fsdp::Topology::SINGLE,
    };
    // A panic is a bug: it fails the stage (tier internal) with its message, as in-process.
    let result = cptc::stages::catching_panics(|| crate::stages::run(&request.params, &ctx));
    match result {
        Ok(output) => Event::Done { output },
        Err(failure) => Event::failed(&failure),
    }
}
