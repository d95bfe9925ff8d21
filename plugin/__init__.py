"""Plugin: ticketlint acting inside the ticketing tools: write-back of labels, comments and
work notes (``writeback``) and the webhook receiver that re-checks one ticket (``serve``).

May import every room below it (config .. sync) and ``notify`` (serve posts immediate
findings to chat).
"""
