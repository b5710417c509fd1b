// A job as the index knows it: its key (name, place, slice), its entry in a lane
// (size, earmark, size class, arrival order) packed into 48 bytes, and the offer by which
// the scan and the watcher hand a job to the index.

import SpoolKit

struct JobKey: Hashable, Sendable {
    var name: JobName
    var place: JobPlace
    /// A slice of a mail-merge pass, or -1 for the job itself.
    private var sliceIndex: Int32

    init(name: JobName, place: JobPlace, slice: Int?) {
        self.name = name
        self.place = place
        sliceIndex = slice.map { Int32($0) } ?? -1
    }
}

/// A job in the index. Kept small (48 bytes): the index holds one per queued job.
struct QueuedJob: Sendable {
    var name: JobName
    var size: Int64
    /// Arrival order: smaller is older.
    var sequence: UInt64
    private var earmarkValue: Int32
    private var sliceIndex: Int32
    private var sizeClassValue: UInt16
    var place: JobPlace

    init(name: JobName, place: JobPlace, size: Int64, sequence: UInt64, earmark: Int = 0, sizeClass: Int = 0, slice: Int? = nil) {
        self.name = name
        self.place = place
        self.size = size
        self.sequence = sequence
        earmarkValue = Int32(earmark)
        sizeClassValue = UInt16(sizeClass)
        sliceIndex = slice.map { Int32($0) } ?? -1
    }

    /// The worker strict round-robin earmarks it for, 0 for any.
    var earmark: Int {
        get { Int(earmarkValue) }
        set { earmarkValue = Int32(newValue) }
    }
    var sizeClass: Int {
        get { Int(sizeClassValue) }
        set { sizeClassValue = UInt16(newValue) }
    }
    /// A slice of a mail-merge pass (`MergeRun`): any worker of its pool may take it.
    var slice: Int? { sliceIndex < 0 ? nil : Int(sliceIndex) }

    var key: JobKey { JobKey(name: name, place: place, slice: slice) }
}

/// A job for the index: where it is, its size, and when it may go (nil: now).
struct JobOffer: Sendable {
    var name: JobName
    var place: JobPlace
    var size: Int64
    var due: Double?
    var slice: Int? = nil
}
