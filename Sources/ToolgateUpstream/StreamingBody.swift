import ToolgateCore

/// A response body read straight from curl's write callback, with backpressure: at most `bufferLimit` bytes
/// wait here, and past that curl pauses the transfer until `next()` has taken them.
///
/// Chunks are handed out as they arrive (everything buffered at once), so an event stream reaches the reader
/// event by event. Dropping the body without reading it to the end cancels the transfer, so a forgotten
/// body cannot hold a connection.
public final class StreamingBody: UpstreamBody {
    let transfer: CurlTransfer

    init(_ transfer: CurlTransfer) {
        self.transfer = transfer
    }

    deinit {
        transfer.cancel(.success(()))
    }

    /// Throws `.idleTimeout` or `.transport` after the bytes that arrived before the failure,
    /// and `.cancelled` when the awaiting task is cancelled (which also cancels the transfer).
    public func next() async throws(UpstreamError) -> [UInt8]? {
        try await transfer.nextChunk().get()
    }

    public func cancel() {
        transfer.cancel(.success(()))
    }

    /// Bytes received and not yet taken by `next()`.
    public var bufferedBytes: Int { transfer.bufferState.bytes }
    /// The most bytes ever waiting at once; never above `bufferLimit` (one curl write is at most 16 KiB).
    public var peakBufferedBytes: Int { transfer.bufferState.peak }
    public var bufferLimit: Int { transfer.bufferState.limit }
    /// Whether the transfer is held paused because the buffer is full.
    public var isPausedByBackpressure: Bool { transfer.bufferState.paused }
}
