#if canImport(Glibc)
import Glibc
#endif

/// RLIMIT_NOFILE, the process's file descriptor budget.
enum DescriptorLimit {
    /// Raises the soft limit to the hard one (many systems start services at 1024 soft with a far higher hard
    /// limit) and returns the soft limit now in force; nil when it is unlimited (RLIM_INFINITY, all ones) or
    /// cannot be read.
    static func raiseToHardLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? nil : Int(clamping: limit.rlim_cur)
    }
}
