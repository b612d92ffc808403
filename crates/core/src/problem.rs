/// Every error a user can see says what is wrong and how to fix it. The API turns a `Problem`
/// into `{"error": code, "message": message, "fix": fix}`; the CLI prints the same three.
pub trait Problem {
    /// A stable, machine-readable code (`snake_case`), e.g. `key_not_base64`.
    fn code(&self) -> &'static str;
    /// What is wrong, naming the field when there is one. Never contains a secret.
    fn message(&self) -> String;
    /// What to do about it.
    fn fix(&self) -> String;
}
