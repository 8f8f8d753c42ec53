//! The async runtime both binaries run on (`nexusd`, and `nexus` for `mcp serve`/`hub up`).

/// Threads for blocking work (file reads and durable writes, which fsync). tokio's default
/// of 512 let a 64-caller read load grow 64 threads, each with its own stack and allocator
/// state: resident memory doubled and the extra threads bought no throughput on a few
/// cores. Sixteen still lets that many fsyncs share a journal commit.
pub const BLOCKING_THREADS: usize = 16;

/// A multi-threaded runtime (one worker per core) with the blocking pool capped.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
}

/// Runs `main` to completion on [`build`]'s runtime: the entry point of both binaries. A
/// runtime that cannot start is one error line and a failing exit code.
pub fn block_on(
    main: impl std::future::Future<Output = std::process::ExitCode>,
) -> std::process::ExitCode {
    match build() {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
