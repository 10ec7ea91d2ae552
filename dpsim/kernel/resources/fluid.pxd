cimport cython
from dpsim.kernel.resources.elements cimport Flow, Link

@cython.locals(link=Link, flow=Flow, on=Link, candidate=Link, n=long, i=long, k=long, count=long, members=list, actual=double, share=double, link_share=double, next_cap=long, n_capped=long, total=long, order=list, heap=list, capped=list)
cpdef list _fill(links, flows, free_links)

@cython.locals(link=Link, flow=Flow, rate=double)
cpdef _set_residual(links, fixed)

cpdef dict solve_rates(links, flows, double low_class_share)

cpdef tuple solve_two_class(links, flows, double low_class_share, free_links=*)

@cython.locals(flow=Flow, link=Link, high=list, low=list, rate=double, f=Flow)
cpdef bint solve_in_place(links, flows, double low_class_share, free_links=*)

@cython.locals(flow=Flow, rates=dict)
cpdef dict _solved(flows)

@cython.locals(f=Flow)
cpdef bint _all_at_own_cap(list flows)

cdef bint COMPILED
cdef double _RATE_TOLERANCE
cdef double _INF

cdef void _heap_pop(list heap)

@cython.locals(n=Py_ssize_t, child=Py_ssize_t, right=Py_ssize_t, item=Link)
cdef void _sift_down(list heap, Py_ssize_t pos)

cdef bint _before(Link a, Link b)
