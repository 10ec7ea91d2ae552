cimport cython
from dpsim.kernel.resources.completions cimport CompletionQueue
from dpsim.kernel.resources.elements cimport Flow, Link

cdef double _TIME_TOLERANCE_S
cdef double _INF
cdef double _SPLIT_SLACK
cdef double _SPLIT_MARGIN

cdef class Network:
    cdef public object env
    cdef public double low_class_share
    cdef public double bin_s
    cdef public list links
    cdef public long _active
    cdef public object _seq
    cdef public CompletionQueue _due
    cdef public double _timer_at
    cdef public object _timer
    cdef public dict bytes_by_tag
    cdef public long flows_started
    cdef public long flows_finished
    cdef public long recomputations
    cdef public long flows_solved
    cdef public list violations
    cdef public dict _dirty
    cdef public list _joined
    cdef public bint _flush_pending
    cdef public long _stamp
    cdef public long _mark
    cdef public bint _split_ok
    cdef public long split_fallbacks
    cdef public long split_solves
    cdef public bint _skip_idle
    cdef public long skipped_solves
    cdef public long skipped_links
    cdef public dict _unchecked
    cdef public bint _driven
    cdef public object timer_key
    cdef public object flush_key
    cdef public list _stack

    cpdef run_flush(self)
    cpdef run_timer(self)
    cpdef _request_flush(self)
    cpdef _flush(self, _event=*)

    @cython.locals(link=Link, most=double, high=bint)
    cpdef _start(self, Flow flow)

    @cython.locals(link=Link, flow=Flow, on=Link, stamp=long, links=list, flows=list, stack=list, boundary=list,
                   seed=bint, top=Py_ssize_t)
    cpdef tuple _component(self, seed_links, list joined, bint split)

    @cython.locals(high=double, low=double, capacity=double)
    cpdef bint _has_slack(self, Link link)

    @cython.locals(link=Link, high=double, low=double, capacity=double, share=double, binding=list)
    cpdef list _binding_boundary(self, list boundary, long stamp, long mark)

    @cython.locals(link=Link, flow=Flow, mark=long, rate=double)
    cpdef long _mark_changed(self, list seeds, list flows)

    @cython.locals(link=Link, flow=Flow, now=double, rate=double, high=double, low=double, links=list, flows=list, boundary=list,
                   finish=double, stamp=long, seeds=list, refilled=bint, mark=long, rated=list, binding=list,
                   crossed=list, joined=list)
    cpdef _recompute(self, seed_links)

    @cython.locals(t0=double, high=double, low=double, bin_s=double, b=long, t=double, end=double)
    cpdef _account_link(self, Link link, double now)

    @cython.locals(link=Link, now=double, slack_bytes=double, high=bint)
    cpdef _finish(self, Flow flow)

    @cython.locals(link=Link, flow=Flow, low_rate=double, capped=bint, share=double)
    cpdef _check_low_guarantee(self, list links, double now)

    @cython.locals(finish=double, delay=double)
    cpdef _arm_timer(self)

    @cython.locals(now=double, done=list, flow=Flow, link=Link, touched=dict, seeds=list,
                   idle=list, bound=bint, skip=bint)
    cpdef _complete_due(self)


cdef Py_ssize_t _push(list stack, Py_ssize_t top, object item)

@cython.locals(i=Py_ssize_t, j=Py_ssize_t)
cpdef bint _repeats_a_link(path)

@cython.locals(other=Link, peer=Flow, high=double, low=double, fastest=bint)
cpdef bint _bottlenecked_elsewhere(Flow flow, Link link, double low_class_share)

@cython.locals(flow=Flow, high=double, low=double, rate=double)
cpdef (double, double) _class_rates(Link link, long stamp)
