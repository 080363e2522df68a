import Testing
import ToolgateCore
@testable import ToolgateUpstream

/// The backpressure state machine on its own, without curl or sockets.
@Suite struct BodyBufferTests {
    static func offer(_ buffer: inout BodyBuffer, _ count: Int, byte: UInt8 = 7) -> BodyBuffer.Offer {
        let chunk = [UInt8](repeating: byte, count: count)
        return chunk.withUnsafeBytes { buffer.offer($0) }
    }

    @Test func pausesAtTheHighWaterMarkAndResumesOnceTheReaderTakesTheBytes() {
        var buffer = BodyBuffer(highWater: 100)
        #expect(Self.offer(&buffer, 60) == .accepted)
        #expect(Self.offer(&buffer, 40) == .accepted)
        #expect(Self.offer(&buffer, 1) == .pause)
        #expect(buffer.paused)
        #expect(buffer.bytes.count == 100)
        guard case .bytes(let bytes, resume: true) = buffer.take() else {
            Issue.record("expected the buffered bytes and a resume")
            return
        }
        #expect(bytes.count == 100)
        #expect(!buffer.paused)
        // curl delivers the refused chunk again after the resume.
        #expect(Self.offer(&buffer, 1) == .accepted)
        guard case .bytes(let again, resume: false) = buffer.take() else {
            Issue.record("expected one byte without a resume")
            return
        }
        #expect(again.count == 1)
        #expect(buffer.peak == 100)
    }

    @Test func anOversizedChunkStillFitsIntoAnEmptyBuffer() {
        var buffer = BodyBuffer(highWater: 10)
        #expect(Self.offer(&buffer, 50) == .accepted)
        #expect(Self.offer(&buffer, 1) == .pause)
    }

    @Test func bytesBeforeAnErrorAreHandedOutFirst() {
        var buffer = BodyBuffer(highWater: 100)
        _ = Self.offer(&buffer, 5)
        buffer.finish(.failure(UpstreamError(code: .idleTimeout, message: "quiet")))
        guard case .bytes(let bytes, resume: false) = buffer.take() else {
            Issue.record("expected bytes first")
            return
        }
        #expect(bytes.count == 5)
        guard case .end(let error?) = buffer.take() else {
            Issue.record("expected the error after the bytes")
            return
        }
        #expect(error.code == .idleTimeout)
    }

    @Test func discardDropsBufferedBytesAndEndsTheBody() {
        var buffer = BodyBuffer(highWater: 100)
        _ = Self.offer(&buffer, 5)
        buffer.finish(.failure(UpstreamError(code: .transport, message: "broken")))
        buffer.discard(.success(()))
        guard case .end(nil) = buffer.take() else {
            Issue.record("expected a clean end after discard")
            return
        }
        #expect(Self.offer(&buffer, 5) == .accepted)
        #expect(buffer.bytes.isEmpty)
    }

    @Test func anEmptyBufferThatHasNotEndedAsksTheReaderToWait() {
        var buffer = BodyBuffer(highWater: 100)
        #expect(buffer.take() == nil)
        buffer.finish(.success(()))
        guard case .end(nil) = buffer.take() else {
            Issue.record("expected the end")
            return
        }
    }
}
