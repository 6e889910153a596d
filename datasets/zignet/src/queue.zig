const std = @import("std");

/// A first-in first-out queue of jobs, backed by an ArrayList.
pub const Queue = struct {
    items: std.ArrayList(u32),
    head: usize = 0,

    /// An empty queue that allocates with `allocator`.
    pub fn init(allocator: std.mem.Allocator) Queue {
        return .{ .items = std.ArrayList(u32).init(allocator) };
    }

    /// Frees the queue's memory.
    pub fn deinit(self: *Queue) void {
        self.items.deinit();
    }

    /// Adds `job` at the back.
    pub fn push(self: *Queue, job: u32) !void {
        try self.items.append(job);
    }

    /// Takes the job at the front, or null when the queue is empty.
    pub fn pop(self: *Queue) ?u32 {
        if (self.head == self.items.items.len) return null;
        const job = self.items.items[self.head];
        self.head += 1;
        return job;
    }

    /// How many jobs wait.
    pub fn len(self: Queue) usize {
        return self.items.items.len - self.head;
    }
};
