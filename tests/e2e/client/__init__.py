"""The e2e tests' HTTP client: every helper that calls the API on a test's behalf, one module per domain.

Each helper takes the test's aiohttp session (`http`), the API's base URL and the acting `Account`, and
asserts the status a successful call answers unless its name says it returns the status
(`try_comment`, `follow_status`, `view`, ...). Import from the domain's module:

    users          Account, unique_username, register, get_user, username_exists, follow, unfollow,
                   follow_status, follow_counts
    posts          PHOTO, SMALL_PHOTO, form, publish, post, get_post, user_posts
    likes          like, like_count, likers
    comments       comment, try_comment, delete_comment, top_level, replies, comment_count, reply_counts
    feed           read_feed, feed_ids, until_in_feed, active_reader
    stories        story_form, post_story, view, user_stories, tray, tray_authors, viewers, view_count
    discovery      search, usernames, tags, hashtag, trending
    notifications  ticket_for, open_stream, next_message, pushed_notification, notifications, until_notified
    common         list_all (every item of a paged list), expect_error (a 4xx/5xx JSON error body)

Not here: fixtures (tests/e2e/conftest.py), the processes the tests start (tests/e2e/processes.py, and
tests/e2e/private_stack.py for a whole stack), what tests read straight from Cassandra
(tests/e2e/stored.py) and the crash tests' load and audit (tests/e2e/write_load.py).
"""
