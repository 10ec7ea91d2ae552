cimport cython
from dpsim.kernel.resources.elements cimport Flow

cdef bint COMPILED

cdef class CompletionQueue:
    cdef public list _heap
    cdef public long _live

    @cython.locals(heap=list)
    cpdef predict(self, Flow flow, double finish_s)

    cpdef forget(self, Flow flow)

    @cython.locals(heap=list, first=Flow)
    cpdef double first_s(self)

    @cython.locals(heap=list, due=list, first=Flow)
    cpdef list pop_due(self, double until_s)


cdef bint _before(Flow a, Flow b)

@cython.locals(item=Flow, above=Flow, parent=Py_ssize_t)
cdef void _sift_up(list heap, Py_ssize_t pos)

@cython.locals(n=Py_ssize_t, child=Py_ssize_t, right=Py_ssize_t, item=Flow, below=Flow)
cdef void _sift_down(list heap, Py_ssize_t pos)

@cython.locals(gone=Flow, last=Flow)
cdef void _remove(list heap, Py_ssize_t pos)
