//! Compile-time behaviour of the macros: the valid forms compile, and each
//! mistake is one error, on the offending token, with the message in its
//! `.stderr` snapshot (regenerate with `TRYBUILD=overwrite` and read the diff).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
