#if TOOLGATE_TSAN
#if canImport(Glibc)
import Glibc
#endif

/// Only in the ThreadSanitizer build (`scripts/sanitize.sh thread`, which defines TOOLGATE_TSAN). The standard
/// library's `Mutex` takes a contended lock inside the uninstrumented `libswiftSynchronization` (`_lockSlow`), so
/// ThreadSanitizer never sees that acquire and reports what the lock protects as a race. This stand-in has the same
/// API on a pthread mutex, which ThreadSanitizer intercepts. Each module that locks declares `Mutex` as this type in
/// its own `TSanMutex.swift` (a module's own declaration shadows an imported one), so ThreadSanitizer checks
/// toolgate's own locking. Every other build uses the standard `Mutex`.
typealias Mutex<Value> = TSanVisibleMutex<Value>

public final class TSanVisibleMutex<Value>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: consuming sending Value) {
        self.value = value
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
#endif
