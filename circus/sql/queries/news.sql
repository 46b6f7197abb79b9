-- News items for /api/v1/news.

-- name: news_list
SELECT * FROM news ORDER BY id DESC LIMIT $1 OFFSET $2;

-- name: news_count
SELECT count(*) FROM news;

-- name: news_insert
INSERT INTO news (title, content, author) VALUES ($1, $2, $3) RETURNING *;

-- name: news_delete
DELETE FROM news WHERE id = $1 RETURNING id;
