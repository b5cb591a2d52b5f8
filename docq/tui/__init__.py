"""``docq top``: the queue in an interactive terminal UI (Textual).

Imported only by ``docq top``: no other command pays for Textual. The UI reads and acts
through the library (`docq.stats`, `docq.views`, `DocumentQueueService`), never SQL.
"""
