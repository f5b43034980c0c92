"""The optional HTTP gateway: the agent, jobs, tree and health over HTTP, and a chat page.

``config`` parses the ``web`` child's arguments, ``token`` keeps the bearer
token file, ``guard`` checks Host and token on every request, ``app`` builds
the FastAPI application, ``events`` streams a job's events as server-sent
events, and ``server`` runs uvicorn on a thread of the daemon's tree.
"""
