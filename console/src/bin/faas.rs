//! faas CLI.
fn main() {}
