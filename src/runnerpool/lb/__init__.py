"""The load balancer: Fn's invoke API over HTTP, placing calls on runners."""
