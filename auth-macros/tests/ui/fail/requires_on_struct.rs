use auth_macros::requires;

#[requires(staff)]
struct Report;

fn main() {
    let _ = Report;
}
