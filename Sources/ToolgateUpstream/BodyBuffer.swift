import ToolgateCore

/// The bounded buffer between curl's write callback and the body's reader, as a plain state machine.
///
/// It is what keeps a slow reader from making the proxy buffer without bound: past `highWater` bytes it
/// refuses data, and the transfer pauses until the reader has taken what is buffered. A reader takes
/// everything at once, so the low-water mark is zero: the transfer resumes as soon as the buffer is emptied.
struct BodyBuffer {
    enum Offer: Equatable {
        case accepted
        /// Nothing was taken: curl keeps the data and must hold the transfer until `take()` asks to resume.
        case pause
    }

    enum Take {
        /// `resume` tells the reader to ask the multi thread to unpause the transfer.
        case bytes([UInt8], resume: Bool)
        /// The body is complete, or ended by an error, and everything before it has been taken.
        case end(UpstreamError?)
    }

    let highWater: Int
    private(set) var bytes: [UInt8] = []
    /// True from a refused offer until the next take, which is when the reader must ask to resume.
    private(set) var paused = false
    private(set) var peak = 0
    private(set) var ending: Result<Void, UpstreamError>?

    init(highWater: Int) {
        precondition(highWater > 0)
        self.highWater = highWater
    }

    var isEnded: Bool { ending != nil }

    /// A chunk always fits into an empty buffer, so one oversized chunk cannot stall the transfer.
    mutating func offer(_ chunk: UnsafeRawBufferPointer) -> Offer {
        guard ending == nil else { return .accepted }
        if !bytes.isEmpty && bytes.count + chunk.count > highWater {
            paused = true
            return .pause
        }
        bytes.append(contentsOf: chunk)
        peak = max(peak, bytes.count)
        return .accepted
    }

    /// Marks the end of the body; bytes already buffered are still handed out first.
    mutating func finish(_ outcome: Result<Void, UpstreamError>) {
        guard ending == nil else { return }
        ending = outcome
    }

    /// Ends the body now, dropping what is buffered and any earlier ending: the reader no longer wants it.
    mutating func discard(_ outcome: Result<Void, UpstreamError>) {
        bytes = []
        paused = false
        ending = outcome
    }

    /// nil while the buffer is empty and the body has not ended: the reader must wait.
    mutating func take() -> Take? {
        if !bytes.isEmpty {
            let taken = bytes
            bytes = []
            let resume = paused && ending == nil
            paused = false
            return .bytes(taken, resume: resume)
        }
        switch ending {
        case nil: return nil
        case .success: return .end(nil)
        case .failure(let error): return .end(error)
        }
    }
}
