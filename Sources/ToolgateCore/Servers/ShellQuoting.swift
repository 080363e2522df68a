/// POSIX shell words: a command line toolgate prints for a person to paste (`wrap`'s `toolgate serve …`, whose paths
/// often hold spaces, as in macOS's "Application Support"), or hands to `/bin/sh -c` for an argv it must run as is.
public enum ShellQuoting {
    /// `word` as one shell word: unchanged when it holds only characters no shell treats specially, else in single
    /// quotes (a `'` inside written as `'\''`).
    public static func quote(_ word: String) -> String {
        let plain = !word.isEmpty
            && word.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || "-_./:=@%+,".utf8.contains(byte)
            }
        if plain { return word }
        // By scalars, not Characters: a `'` followed by a combining mark is one Character that is not "'", yet the
        // shell sees the quote.
        var quoted = "'"
        for scalar in word.unicodeScalars {
            if scalar == "'" { quoted += "'\\''" } else { quoted.unicodeScalars.append(scalar) }
        }
        return quoted + "'"
    }

    /// The words joined into one command line.
    public static func commandLine(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }

    /// A servers file's stdio server (`command` and `args`, which clients run without a shell) as the `/bin/sh -c`
    /// line the stdio upstream runs: every word quoted, and `exec`, so the server is the process toolgate signals.
    public static func exec(_ command: String, arguments: [String], workingDirectory: String? = nil) -> String {
        let line = "exec " + commandLine([command] + arguments)
        guard let workingDirectory else { return line }
        return "cd " + quote(workingDirectory) + " && " + line
    }
}
