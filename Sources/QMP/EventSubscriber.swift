import Logging
import Synchronization

/// One `events()` stream. Bounded: when the consumer falls behind, the stream keeps
/// the newest events and drops the oldest; drops are counted and logged at warning
/// level on the 1st, 2nd, 4th, 8th, ... drop so a slow consumer can't flood the log.
final class EventSubscriber: Sendable {
    let continuation: AsyncStream<QMP.Event>.Continuation
    let capacity: Int
    private let dropped = Atomic<Int>(0)

    init(continuation: AsyncStream<QMP.Event>.Continuation, capacity: Int) {
        self.continuation = continuation
        self.capacity = capacity
    }

    func deliver(_ event: QMP.Event, logger: Logger) {
        guard case .dropped(let oldest) = continuation.yield(event) else { return }
        let total = dropped.add(1, ordering: .relaxed).newValue
        if total & (total - 1) == 0 {
            logger.warning(
                "QMP event subscriber is full: dropped the oldest event",
                metadata: [
                    "qmp.event": "\(oldest.name)",
                    "qmp.events.dropped": "\(total)",
                    "qmp.events.capacity": "\(capacity)",
                ])
        }
    }
}
