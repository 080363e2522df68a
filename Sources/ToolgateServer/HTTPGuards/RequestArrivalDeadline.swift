import NIOCore
import NIOHTTP1

/// `--client-idle-timeout` bounds silence, and every arriving piece of a request resets Hummingbird's idle timer, so
/// a client trickling a body a byte at a time would hold its connection (and a slot under `--max-connections`) for
/// ever. This bounds the request as a whole: from its head to its end it must arrive within the same time, or the
/// connection is closed. The answer is not bounded: the timer stops when the request has arrived, so an event
/// stream to the client runs as long as it needs.
final class RequestArrivalDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let limit: TimeAmount
    private var timer: Scheduled<Void>?

    init(limit: TimeAmount) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: limit) { bound.value.close(promise: nil) }
        case .body:
            break
        case .end:
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
