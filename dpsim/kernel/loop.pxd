cimport cython
from dpsim.kernel.resources.net cimport Network

@cython.locals(queue=list, events=long, wakeups=long, callbacks=list, driven=Network)
cpdef run(env, net, until=*, check=*, long check_every=*, double check_after_s=*)
