cdef double _INF

cdef class Link:
    cdef public str name
    cdef public double capacity
    cdef public list flows
    cdef public double bytes_high
    cdef public double bytes_low
    cdef public double rate_high
    cdef public double rate_low
    cdef public double _last_t
    cdef public long bin_index
    cdef public double bin_high
    cdef public double bin_low
    cdef public object _past_bins
    cdef public object _past_high
    cdef public object _past_low
    cdef public long index
    cdef public double avail
    cdef public long unfixed
    cdef public list members
    cdef public long n_members
    cdef public double key
    cdef public long seen
    cdef public long mark
    cdef public double joining_high
    cdef public double joining_low

    cpdef add_to_bin(self, long b, double high_bytes, double low_bytes)

cdef class Flow:
    cdef public tuple path
    cdef public double size
    cdef public double remaining
    cdef public object traffic_class
    cdef public object max_rate
    cdef public object tag
    cdef public double rate
    cdef public object event
    cdef public double _last_t
    cdef public long _version
    cdef public long seq
    cdef public double start_t
    cdef public double due_s
    cdef public long due_pos
    cdef public double solved
    cdef public bint fixed
    cdef public long seen
    cdef public bint high
