/// A servers file's stdio server (`command` and `args`, run without a shell by the clients) as the `/bin/sh -c` line
/// the stdio upstream runs: every word single-quoted, so nothing in a name or an argument is read by the shell, and
/// `exec`, so the server is the process toolgate signals.
public enum ShellCommandLine {
    public static func exec(_ command: String, arguments: [String], workingDirectory: String? = nil) -> String {
        let words = ([command] + arguments).map(quoted).joined(separator: " ")
        guard let workingDirectory else { return "exec " + words }
        return "cd " + quoted(workingDirectory) + " && exec " + words
    }

    /// `'…'`, with each `'` written as `'\''`.
    public static func quoted(_ word: String) -> String {
        "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
