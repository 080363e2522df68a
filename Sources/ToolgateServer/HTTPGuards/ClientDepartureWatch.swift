import NIOCore

/// Notices an agent leaving, so the work done for it stops (DESIGN.md section 4, "Bounded work per request").
///
/// Hummingbird allows half-closed connections, so a client that closes its socket while toolgate waits for the
/// upstream only delivers a FIN (`inputClosed`): the channel stays open and nothing would stop the wait. An
/// HTTP/1.1 client that stops sending has gone; like nginx (its 499), toolgate then closes the connection and
/// stops the exchange in flight.
final class ClientDepartureWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let connection = ClientConnection()

    func handlerAdded(context: ChannelHandlerContext) {
        ClientConnection.register(connection, for: context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave(context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave(context.channel)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            connection.depart()
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func leave(_ channel: any Channel) {
        connection.depart()
        ClientConnection.unregister(channel)
    }
}
