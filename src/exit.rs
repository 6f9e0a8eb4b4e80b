//! Exit codes, as documented in the README and `--help`.

/// All good.
pub const OK: u8 = 0;
/// Some rotation (or check) failed; nothing unsafe was done.
pub const FAILED: u8 = 1;
/// Bad command line.
pub const USAGE: u8 = 2;
/// The policy is invalid (`EX_CONFIG`): systemd's `RestartPreventExitStatus=78` stops restarts.
pub const CONFIG: u8 = 78;
